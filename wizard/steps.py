"""The wizard's steps, described once for both front ends (the Textual app and the plain prompts).

Each step has a title, a sentence or two for a newcomer, and a list of Questions that depends on
the answers so far. A Question knows its default, its choices and how to validate an answer, so
both front ends ask the same things with the same defaults and the same error messages, and
`Answers.options()` turns the answers into the one ConversionOptions whose command gets shown
and run. Nothing here imports a UI library or TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from engine.backends import TARGETS
from engine.errors import UserError
from engine.options import PRESETS, QUANTIZATIONS, ConversionOptions, parse_dim, parse_floats

TARGET_TITLES = {"onnx": "ONNX", "tfjs": "TensorFlow.js", "openvino": "OpenVINO IR", "tflite": "TFLite"}
TARGET_NOTES = {
    "onnx": "runs in onnxruntime, TensorRT, DirectML, ...",
    "tfjs": "runs in the browser or Node.js",
    "openvino": "Intel CPUs, GPUs and NPUs",
    "tflite": "Android, iOS and microcontrollers",
}
# One line each on what a quantization mode trades (size vs accuracy).
QUANTIZATION_NOTES = {
    "": "none: float32 weights, exact results",
    "float16": "float16: half the size, tiny accuracy loss (~1e-3)",
    "uint8": "uint8: a quarter of the size, visible accuracy loss",
    "uint16": "uint16: half the size, small accuracy loss",
    "int8": "int8 (dynamic): ~a quarter of the size, some accuracy loss",
    "dynamic": "dynamic range: int8 weights, ~a quarter of the size, some accuracy loss",
    "fp16": "fp16 weight compression: half the size, tiny accuracy loss",
}
PRESET_FAMILIES = {"inception": "Inception", "mobilenet": "MobileNet", "nasnet": "NASNet", "resnet": "ResNet", "vgg": "VGG"}
DEFAULT_OPSET = 15


@dataclass(frozen=True)
class Question:
    key: str  # what Answers.set() takes: an attribute, or "shape:INPUT" / "quantize:TARGET"
    kind: str  # "text", "select" (one of choices), "multi" (several of choices), "confirm"
    label: str
    help: str = ""
    choices: tuple[tuple[str, str], ...] = ()  # (value, title) for select and multi
    default: Any = None
    validate: Callable[[Any], str | None] = lambda value: None  # → error message, or None if fine


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    help: str  # what this step is about, for someone who has never converted a model


STEPS = (
    Step("model", "Model", "Pick a model file or a SavedModel directory. The format is read from the content: "
         "a frozen graph carries its weights inside; SavedModels and checkpoints keep them in files beside it."),
    Step("graph", "Graph", "What goes in and what comes out. Converters need the input and output tensors by name; "
         "a SavedModel may hold several graphs (tag sets) and entry points (signatures)."),
    Step("shapes", "Shapes", "The input shapes the converted model accepts: -1 keeps a dimension dynamic, a fixed "
         "batch size often runs faster. Unticked outputs are cut off."),
    Step("preprocess", "Preprocessing", "Image models expect pixels scaled as in training. Baking (x - mean) / scale "
         "into the converted model lets it take raw pixels."),
    Step("targets", "Targets", "What to convert to. Quantization stores weights in fewer bits: smaller, at some "
         "cost in accuracy; none keeps results identical to TensorFlow."),
    Step("review", "Review", "The exact command that will run: copy it to reproduce this conversion in a script, "
         "or run it here."),
    Step("run", "Run", "TensorFlow converts in a separate process, then each result is checked against TensorFlow "
         "on random inputs. Cancel leaves nothing behind."),
    Step("result", "Result", "Where each converted model is, how close its outputs are to TensorFlow's, and how "
         "to load it."),
)
STEP_KEYS = tuple(s.key for s in STEPS)


@dataclass
class Answers:
    """Everything the user chose so far. Text answers are kept as typed and parsed in options()."""

    model: str = ""
    info: Any = None  # engine.inspect.ModelInfo of `model` with the chosen tag/signature
    tag: str | None = None
    signature: str | None = None
    batch: str = ""
    shapes: dict[str, str] = field(default_factory=dict)  # input name → "1,224,224,3"
    keep_outputs: list[str] | None = None  # None = all outputs
    preprocessing: str = "none"  # "none", a preset name, or "custom"
    mean: str = ""
    scale: str = ""
    reverse_channels: bool = False
    targets: list[str] = field(default_factory=lambda: ["onnx"])
    quantize: dict[str, str] = field(default_factory=dict)  # target → mode ("" = none)
    opset: str = ""
    tfjs_format: str = "graph"
    output_dir: str = ""
    force: bool = False
    defaults: tuple[str | None, str | None] = (None, None)  # the tag and signature the engine picks by itself

    def load(self, path: str, *, tag: str | None = None, signature: str | None = None) -> None:
        """Detect and inspect `path` (no TensorFlow); raises UserError with the message to show in place.

        A new model resets the answers that depend on it; a new tag or signature keeps the rest."""
        self.adopt(path, load_model(path, tag=tag, signature=signature))

    def adopt(self, path: str, info) -> None:
        """Take a model read elsewhere (the app reads it in a worker) as load() would."""
        if path != self.model or self.info is None:
            fresh = Answers(targets=self.targets)
            self.__dict__.update(fresh.__dict__)
            self.model, self.defaults = path, (_tag_text(info.tag), info.signature)
        self.info, self.tag, self.signature = info, _tag_text(info.tag), info.signature

    def get(self, key: str) -> Any:
        kind, _, name = key.partition(":")
        if kind == "shape" and name:
            return self.shapes.get(name, shape_text(self.input(name).shape))
        if kind == "quantize" and name:
            return self.quantize.get(name, "")
        return getattr(self, key)

    def set(self, key: str, value: Any) -> None:
        kind, _, name = key.partition(":")
        if key == "output_dir" and value != self.output_dir:
            self.force = False  # consent to replace one directory is not consent for another
        if kind == "shape" and name:
            self.shapes[name] = value
        elif kind == "quantize" and name:
            self.quantize[name] = value
        else:
            setattr(self, key, value)

    def input(self, name: str):
        return next(i for i in self.info.inputs if i.name == name)

    def options(self) -> ConversionOptions:
        """The conversion these answers describe; raises UserError on an answer that does not parse."""
        info = self.info
        overrides = []
        for i in info.inputs:
            text = self.shapes.get(i.name)
            if text is not None and text.strip() and text.strip() != shape_text(i.shape):
                overrides.append((i.name, parse_shape(text, rank=None if i.shape is None else len(i.shape))))
        keep = tuple(self.keep_outputs) if self.keep_outputs is not None else ()
        if set(keep) == {o.name for o in info.outputs}:
            keep = ()
        custom = self.preprocessing == "custom"
        return ConversionOptions(
            model=self.model, targets=tuple(t for t in TARGETS if t in self.targets),
            output_dir=self.output_dir or default_output_dir(self.model),
            inputs=tuple(overrides), outputs=keep,
            batch=int(self.batch) if self.batch.strip() else None,
            tag=self.tag if self.tag != self.defaults[0] else None,
            signature=self.signature if self.signature != self.defaults[1] else None,
            preset=self.preprocessing if self.preprocessing in PRESETS else None,
            mean_values=parse_floats(self.mean, "--mean-values") if custom and self.mean.strip() else None,
            scale_values=parse_floats(self.scale, "--scale-values") if custom and self.scale.strip() else None,
            reverse_input_channels=self.reverse_channels and self.preprocessing != "none",
            quantize=tuple(f"{t}:{self.quantize[t]}" for t in TARGETS if t in self.targets and self.quantize.get(t)),
            opset=int(self.opset) if self.opset.strip() and int(self.opset) != DEFAULT_OPSET else None,
            tfjs_format=self.tfjs_format if "tfjs" in self.targets else "graph",
            force=self.force,
        )


def questions(step: str, answers: Answers) -> list[Question]:
    """The questions of `step`, given the answers so far (later answers depend on earlier ones)."""
    return _QUESTIONS.get(step, lambda a: [])(answers)


def _model_questions(a: Answers) -> list[Question]:
    return [Question("model", "text", "Model path", "a file (.pb, .pbtxt, .meta, .h5, .keras) or a SavedModel directory",
                     default=a.model, validate=lambda v: None if str(v).strip() else "give a path to a model")]


def _graph_questions(a: Answers) -> list[Question]:
    info, result = a.info, []
    if len(info.tags) > 1:
        result.append(Question("tag", "select", "Tag set", "SavedModels keep one graph per tag set; 'serve' is for inference",
                               choices=tuple((",".join(t), ",".join(t)) for t in info.tags), default=",".join(info.tag)))
    if len(info.signatures) > 1:
        result.append(Question("signature", "select", "Signature", "the entry point to convert",
                               choices=tuple((s, s) for s in info.signatures), default=info.signature))
    return result


def _shape_questions(a: Answers) -> list[Question]:
    result = [Question("batch", "text", "Batch size", "blank keeps each input's own first dimension",
                       default=a.batch, validate=_check_batch)]
    for i in a.info.inputs:
        if i.shape == [] or (i.note and (i.dtype == "bool" or "default" in i.note)):
            continue  # scalars and is_training-style switches: nothing to reshape (switches stay at their default)
        rank = None if i.shape is None else len(i.shape)
        result.append(Question(f"shape:{i.name}", "text", f"Shape of {i.name} ({i.dtype or '?'})",
                               "comma-separated; -1 keeps a dimension dynamic" + ("" if rank is not None else
                                                                                  "; blank keeps it unknown"),
                               default=a.get(f"shape:{i.name}"),
                               validate=lambda v, rank=rank: str(v).strip() and _error_of(lambda: parse_shape(v, rank=rank)) or None))
    outputs = tuple((o.name, o.name) for o in a.info.outputs)
    if len(outputs) > 1:
        result.append(Question("keep_outputs", "multi", "Outputs to keep", "unticked outputs are cut from the graph",
                               choices=outputs, default=a.keep_outputs or [o for o, _ in outputs],
                               validate=lambda v: None if v else "keep at least one output"))
    return result


def _preprocess_questions(a: Answers) -> list[Question]:
    choices = [("none", "none: the model takes its inputs as they are")]
    choices += [(p, f"{PRESET_FAMILIES[p]}: mean {_floats(m, sep=',')}, scale {_floats(s)}") for p, (m, s) in PRESETS.items()]
    choices.append(("custom", "custom mean and scale"))
    result = [Question("preprocessing", "select", "Preprocessing",
                       "presets: how each family was trained (TF-Slim; ResNet/VGG means are Caffe's, in BGR order)",
                       choices=tuple(choices), default=a.preprocessing)]
    if a.preprocessing == "custom":
        channels = _channels(a)
        result += [
            Question("mean", "text", "Mean values", "subtracted per channel, e.g. 127.5 or 123.68,116.78,103.94",
                     default=a.mean, validate=lambda v: _check_floats(v, "--mean-values", channels)),
            Question("scale", "text", "Scale values", "divided per channel after the mean, e.g. 127.5 or 1",
                     default=a.scale, validate=lambda v: _check_floats(v, "--scale-values", channels)),
        ]
    if a.preprocessing != "none":
        result.append(Question("reverse_channels", "confirm", "Reverse input channels (RGB <-> BGR)",
                               "for a model trained on BGR images fed RGB ones, or the other way round",
                               default=a.reverse_channels))
    return result


def _target_questions(a: Answers) -> list[Question]:
    blocked = preflight(a.info)
    titles = tuple((t, f"{TARGET_TITLES[t]}: " + (f"blocked by {', '.join(sorted(blocked[t]))}" if blocked.get(t)
                                                   else TARGET_NOTES[t])) for t in TARGETS)
    result = [Question("targets", "multi", "Convert to", "one or more", choices=titles, default=a.targets,
                       validate=lambda v: None if v else "choose at least one target")]
    for t in TARGETS:
        if t not in a.targets:
            continue
        modes = ("",) + QUANTIZATIONS[t]
        result.append(Question(f"quantize:{t}", "select", f"{TARGET_TITLES[t]} quantization", "",
                               choices=tuple((m, QUANTIZATION_NOTES[m]) for m in modes), default=a.get(f"quantize:{t}")))
        if t == "onnx":
            result.append(Question("opset", "text", "ONNX opset", f"blank for {DEFAULT_OPSET}; newer runtimes take up to 18",
                                   default=a.opset, validate=_check_opset))
        if t == "tfjs" and a.info.op_kind == "keras_layer":
            result.append(Question("tfjs_format", "select", "TF.js model type", "",
                                   choices=(("graph", "graph model: fastest inference"),
                                            ("layers", "layers model: can be trained further in the browser")),
                                   default=a.tfjs_format))
    return result


def _review_questions(a: Answers) -> list[Question]:
    result = [Question("output_dir", "text", "Output directory", "each target goes into a subdirectory of it",
                       default=a.output_dir or default_output_dir(a.model), validate=_check_output_dir)]
    out = Path(a.output_dir or default_output_dir(a.model))
    if out.is_dir() and any(out.iterdir()):
        result.append(Question("force", "confirm", f"{out} exists: replace it", "replaced only after a successful run",
                               default=a.force, validate=lambda v: None if v else "tick to replace, or choose another directory"))
    return result


_QUESTIONS = {"model": _model_questions, "graph": _graph_questions, "shapes": _shape_questions,
              "preprocess": _preprocess_questions, "targets": _target_questions, "review": _review_questions}


# --- what the steps show besides questions --------------------------------------------------------


def load_model(path: str, *, tag: str | None = None, signature: str | None = None):
    """detect + inspect, no TensorFlow; raises UserError with the message to show in place."""
    from engine.detect import detect
    from engine.inspect import inspect

    path = str(Path(path.strip()).expanduser()) if path.strip() else ""
    if not path:
        raise UserError("give a path to a model")
    return inspect(detect(path), tag=tag, signature=signature)


def preflight(info) -> dict[str, dict[str, str] | None]:
    """target → {op: why it blocks} from the op inventory, or None where that can't be known before
    converting (Keras layers become TF ops only when frozen; TFLite has no op list to check)."""
    from engine.backends import get

    return {t: get(t).preflight(dict(info.ops)) if info.op_kind == "tf_op" and get(t).preflight_knows_ops else None
            for t in TARGETS}


def preprocessing_preview(a: Answers) -> str:
    """The formula the converted model applies, and what it does to the pixel range [0, 255]."""
    if a.preprocessing == "none":
        return "The model takes its inputs unchanged."
    if a.preprocessing in PRESETS:
        mean, scale = PRESETS[a.preprocessing]
    else:
        try:
            mean = parse_floats(a.mean, "--mean-values") if a.mean.strip() else (0.0,)
            scale = parse_floats(a.scale, "--scale-values") if a.scale.strip() else (1.0,)
        except UserError as e:
            return str(e)
    x = "x[..., ::-1]" if a.reverse_channels else "x"
    low = [(0 - m) / s for m, s in _pairs(mean, scale)]
    high = [(255 - m) / s for m, s in _pairs(mean, scale)]
    span = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in dict.fromkeys(zip(low, high)))
    return f"y = ({x} - {_floats(mean)}) / {_floats(scale)}    pixels [0, 255] become {span}"


def load_snippet(target: str, output_dir) -> str:
    """Two lines that load and run the converted model, for the Result step."""
    d = Path(output_dir) / target
    return {
        "onnx": f"import onnxruntime as ort\nsession = ort.InferenceSession('{d / 'model.onnx'}'); session.run(None, feeds)",
        "tfjs": f"const tf = require('@tensorflow/tfjs-node');\nconst model = await tf.loadGraphModel('file://{d.resolve() / 'model.json'}');",
        "openvino": f"import openvino as ov\ncompiled = ov.Core().compile_model('{d / 'model.xml'}', 'CPU'); compiled(feeds)",
        "tflite": f"import tensorflow as tf\ninterpreter = tf.lite.Interpreter('{d / 'model.tflite'}'); interpreter.allocate_tensors()",
    }[target]


def default_output_dir(model: str) -> str:
    """'models/resnet.pb' → 'resnet_converted' (in the working directory)."""
    name = Path(model.rstrip("/")).name or "model"
    for suffix in (".pbtxt", ".pb", ".meta", ".keras", ".h5", ".hdf5"):
        name = name.removesuffix(suffix)
    return f"{name}_converted"


def shape_text(shape) -> str:
    return "" if shape is None else ",".join(map(str, shape))


def parse_shape(text: str, *, rank: int | None) -> tuple[int, ...]:
    dims = tuple(parse_dim(d, "shape") for d in text.replace("[", "").replace("]", "").split(",") if d.strip())
    if not dims:
        raise UserError("shape: give the dimensions, e.g. 1,224,224,3")
    if rank is not None and len(dims) != rank:
        raise UserError(f"shape: the input has {rank} dimensions, not {len(dims)}")
    return dims


# --- validators: an error message, or None --------------------------------------------------------


def _error_of(check: Callable[[], object]) -> str | None:
    try:
        check()
    except UserError as e:
        return str(e)
    return None


def _check_batch(text: str) -> str | None:
    text = str(text).strip()
    if not text or (text.isdigit() and int(text) > 0):
        return None
    return f"batch {text!r}: must be a positive integer, or blank to keep the model's own"


def _check_opset(text: str) -> str | None:
    text = str(text).strip()
    if not text or (text.isdigit() and 7 <= int(text) <= 18):
        return None
    return f"opset {text!r}: must be a number from 7 to 18 (tf2onnx 1.17), or blank for {DEFAULT_OPSET}"


def _check_floats(text: str, flag: str, channels: int | None) -> str | None:
    if not str(text).strip():
        return None
    try:
        values = parse_floats(text, flag)
    except UserError as e:
        return str(e)
    if channels and len(values) not in (1, channels):
        return f"{flag}: {len(values)} values for {channels} channels; give 1 or {channels}"
    return None


def _check_output_dir(text: str) -> str | None:
    out = Path(str(text).strip() or ".")
    if out.exists() and not out.is_dir():
        return f"{out} is a file; choose a directory"
    if not out.resolve().parent.is_dir():
        return f"{out.resolve().parent} does not exist; create it first"
    return None


def _channels(a: Answers) -> int | None:
    """The channel count of the first image-like (4-D) input, if any."""
    for i in a.info.inputs:
        if i.shape and len(i.shape) == 4 and i.shape[-1] > 0:
            return i.shape[-1]
    return None


def _tag_text(tag) -> str | None:
    return ",".join(tag) if tag else None


def _pairs(mean, scale):
    n = max(len(mean), len(scale))
    return [(mean[min(k, len(mean) - 1)], scale[min(k, len(scale) - 1)]) for k in range(n)]


def _floats(values, sep: str = ", ") -> str:
    return "[" + sep.join(f"{v:g}" for v in values) + "]" if len(set(values)) > 1 else f"{values[0]:g}"
