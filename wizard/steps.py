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
from typing import TYPE_CHECKING, Any, Callable

from engine.errors import UserError

# engine.options and engine.backends (and json) are imported where they are used, as engine.detect
# and engine.inspect are: the wizard's first screen needs none of them, and its start-up time is a goal.
if TYPE_CHECKING:
    from engine.options import ConversionOptions

# Each target's title, note, quantization modes and options are its backend's (engine.backends).
NO_QUANTIZATION = "none: float32 weights, exact results"
PRESET_FAMILIES = {"inception": "Inception", "mobilenet": "MobileNet", "nasnet": "NASNet", "resnet": "ResNet", "vgg": "VGG"}


@dataclass(frozen=True)
class Question:
    key: str  # what Answers.set() takes: an attribute, or "shape:INPUT" / "quantize:TARGET"
    kind: str  # "text", "select" (one of choices), "multi" (several of choices), "confirm"
    label: str
    help: str = ""
    choices: tuple[tuple[str, str], ...] = ()  # (value, title) for select and multi
    default: Any = None
    validate: Callable[[Any], str | None] = lambda value: None  # → error message, or None if fine
    completion: str = ""  # "path": the answer is a file or directory name (offer completion / a picker)


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    help: str  # what this step is about, for someone who has never converted a model
    teach: str = ""  # a longer explanation for the guided demo (and anyone who asks "why?")


STEPS = (
    Step("model", "Model", "Pick a model file or a SavedModel directory. The format is read from the content: "
         "a frozen graph carries its weights inside; SavedModels and checkpoints keep them in files beside it.",
         teach="TensorFlow models come in a few forms. A frozen graph (.pb) is one file: the network and its "
               "trained weights stored together as constants, the simplest thing to convert. A checkpoint keeps "
               "them apart: an inference graph (.pb) describes the network, and checkpoint files (.ckpt, or "
               ".index + .data) hold the trained values; TF-Slim's model library ships models this way. A "
               "MetaGraph (.meta) is a graph saved with its training machinery still in it. A SavedModel is a "
               "directory (saved_model.pb + variables/) with named entry points, TensorFlow 2's standard; Keras "
               ".keras and .h5 files hold a Keras model's layers and weights. Whatever the form, tfwizard freezes "
               "it into one graph with TensorFlow before converting."),
    Step("graph", "Graph", "What goes in and what comes out. Converters need the input and output tensors by name; "
         "a SavedModel may hold several graphs (tag sets) and entry points (signatures).",
         teach="A model is a graph of operations (ops) between named tensors. Converters need the names of the "
               "inputs you feed and the outputs you read, and the converted model keeps them, so the code that "
               "runs it later uses the same names. tfwizard reads them from the file without running TensorFlow. "
               "Each target runtime supports its own set of ops; a target that lacks one of the model's ops "
               "cannot run it, which is what the per-target check below tells you before anything is converted."),
    Step("shapes", "Shapes", "The input shapes the converted model accepts: -1 keeps a dimension dynamic, a fixed "
         "batch size often runs faster. Unticked outputs are cut off.",
         teach="A shape gives the size of each dimension of a tensor: [1, 224, 224, 3] is one 224x224 image "
               "with 3 colour channels (batch, height, width, channels). -1 means any size. Several runtimes "
               "(OpenVINO, TFLite, most accelerators) are faster with fixed sizes, or need them, and a batch of 1 "
               "is the usual choice for serving one image at a time. A shape the model cannot take, such as the "
               "wrong number of dimensions, is refused here, before TensorFlow starts."),
    Step("preprocess", "Preprocessing", "Image models expect pixels scaled as in training. Baking (x - mean) / scale "
         "into the converted model lets it take raw pixels.",
         teach="A network only gives good answers for inputs scaled the way it was trained. TF-Slim's Inception "
               "models were trained on images mapped to [-1, 1]: convert to [0, 1], subtract 0.5, multiply by 2. "
               "An image read from disk holds integers in [0, 255], so the same result is (x - 127.5) / 127.5: "
               "mean 127.5 and scale 127.5, which turn 0 into -1 and 255 into 1. Baking this into the converted "
               "model lets an application feed raw pixels. ResNet and VGG (Caffe-style) instead subtract per-"
               "channel means, in BGR order, with scale 1. Get it wrong and the model still runs, but its answers "
               "are poor, and no error tells you so."),
    Step("targets", "Targets", "What to convert to. Quantization stores weights in fewer bits: smaller, at some "
         "cost in accuracy; none keeps results identical to TensorFlow.",
         teach="Each target is a runtime: ONNX (onnxruntime, TensorRT, DirectML and most accelerators), "
               "TensorFlow.js (browsers and Node.js), OpenVINO IR (Intel CPUs, GPUs and NPUs) and TFLite (phones "
               "and microcontrollers). Quantization stores the weights with fewer bits: float16 halves the file "
               "and moves outputs by about 1e-3; 8-bit modes make it about four times smaller, and often faster "
               "on small devices, but the outputs drift further from TensorFlow's. Without quantization the "
               "result matches TensorFlow to within 1e-4, and verification checks exactly that."),
    Step("review", "Review", "The exact command that will run: copy it to reproduce this conversion in a script, "
         "or run it here.",
         teach="Every answer so far is one command line, and the wizard runs exactly that command. Paste it into "
               "a script or a CI job to repeat the conversion without the wizard."),
    Step("run", "Run", "TensorFlow converts in a separate process, then each result is checked against TensorFlow "
         "on random inputs. Cancel leaves nothing behind.",
         teach="TensorFlow starts in a separate process (about 10 s), freezes the model once and converts it for "
               "each target. Then each converted model is run on the same random inputs as TensorFlow, and the "
               "outputs are compared: max abs diff is the largest difference in any output value. Output goes to "
               "a temporary directory that is renamed into place only at the end, so Ctrl-C leaves nothing."),
    Step("result", "Result", "Where each converted model is, how close its outputs are to TensorFlow's, and how "
         "to load it.",
         teach="Each target's directory holds the model to ship, and report.json records the command, the files "
               "and how close each result came to TensorFlow. The two lines under each target load it in its "
               "runtime. `tfwizard view FILE` shows a model, original or converted, as a graph in Netron."),
)
# The guided demo's opening words (both front ends show it before the first step).
DEMO_INTRO = ("This demo converts a small image classifier to ONNX and checks the result, explaining each step. "
              "The model is a TF-Slim style Inception graph with its checkpoint, the same form as the TF-Slim "
              "model library's inception_v1: an inference graph, a checkpoint, images in [-1, 1]. Press Enter "
              "to take each suggested answer; Ctrl-C stops at any time and leaves nothing behind.")
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
    keras_format: str = "h5"
    output_dir: str = ""
    tensorboard_logdir: str = ""  # blank: no TensorBoard dump
    force: bool = False
    trust_model: bool = False  # asked only for Keras models with Lambda layers / custom objects
    checking: bool = False  # the Review's "check with my own input file, or time each target" was opened
    sample_input: str = ""  # --sample-input (while checking)
    benchmark: bool = False  # --benchmark (while checking)
    custom_objects: str = ""  # --custom-objects, comma-separated; asked when the model names custom classes
    op_libraries: str = ""  # --load-op-library, comma-separated; asked when the graph has custom ops
    defaults: tuple[str | None, str | None] = (None, None)  # the tag and signature the engine picks by itself
    outline: str = ""  # engine.outline's picture of the model as text, made when it was read
    deep: dict | None = None  # `inspect --deep` of this model, tag, signature (wizard.analysis), once it answered

    def load(self, path: str, *, tag: str | None = None, signature: str | None = None) -> None:
        """Detect and inspect `path` (no TensorFlow); raises UserError with the message to show in place.

        A new model resets the answers that depend on it; a new tag or signature keeps the rest."""
        self.adopt(path, *load_model(path, tag=tag, signature=signature))

    def loaded(self, path: str) -> bool:
        """`path` is the model these answers already hold (read before: no need to read it again)."""
        return self.info is not None and self.model == normal_path(path)

    def adopt(self, path: str, info, outline: str = "") -> None:
        """Take a model read elsewhere (the app reads it in a worker: load_model) as load() would."""
        path = normal_path(path)
        if path != self.model or self.info is None:
            offered = offered_targets(info)  # keras is kept only for a model it can take
            fresh = Answers(targets=[t for t in self.targets if t in offered] or ["onnx"])
            self.__dict__.update(fresh.__dict__)
            self.model, self.defaults = path, (_tag_text(info.tag), info.signature)
        self.info, self.tag, self.signature = info, _tag_text(info.tag), info.signature
        self.outline, self.deep = outline, None

    def apply(self, key: str, value: Any) -> None:
        """Record one answer the way both front ends must: a model path is loaded, and a new tag or
        signature re-inspects the model (its inputs and outputs change); anything else is stored.
        Raises UserError with the message to show in place (the answer is then not taken)."""
        if key == "model":
            self.load(str(value))
        elif key == "tag" and value != self.tag:
            try:  # keep the signature if the new tag set has it too
                self.load(self.model, tag=value, signature=self.signature)
            except UserError:
                self.load(self.model, tag=value)
            self.shapes, self.keep_outputs = {}, None
        elif key == "signature" and value != self.signature:
            self.load(self.model, tag=self.tag, signature=value)
            self.shapes, self.keep_outputs = {}, None
        elif key not in ("tag", "signature"):
            self.set(key, value)

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
        """The conversion these answers describe; raises UserError on an answer that does not parse or that
        ConversionOptions refuses (the gate the CLI shares, engine.options)."""
        from engine.backends import TARGETS, get
        from engine.options import PRESETS, ConversionOptions, parse_batch, parse_floats, parse_sample_input

        info = self.info
        overrides = []
        for i in info.inputs:
            text = self.shapes.get(i.name)
            if text is not None and text.strip():
                dims = parse_shape(text, rank=None if i.shape is None else len(i.shape))
                if i.shape is None or list(dims) != i.shape:  # '?,32' is the model's own '-1,32': no override
                    overrides.append((i.name, dims))
        keep = tuple(self.keep_outputs) if self.keep_outputs is not None else ()
        if set(keep) == {o.name for o in info.outputs}:
            keep = ()
        custom = self.preprocessing == "custom"
        onnx = get("onnx")
        opset = onnx.parse_opset(self.opset) if "onnx" in self.targets else None
        return ConversionOptions(
            model=self.model, targets=tuple(t for t in TARGETS if t in self.targets),
            output_dir=self.output_dir or default_output_dir(self.model),
            inputs=tuple(overrides), outputs=keep,
            batch=parse_batch(self.batch),
            tag=self.tag if self.tag != self.defaults[0] else None,
            signature=self.signature if self.signature != self.defaults[1] else None,
            preset=self.preprocessing if self.preprocessing in PRESETS else None,
            mean_values=parse_floats(self.mean, "--mean-values") if custom and self.mean.strip() else None,
            scale_values=parse_floats(self.scale, "--scale-values") if custom and self.scale.strip() else None,
            reverse_input_channels=self.reverse_channels and self.preprocessing != "none",
            quantize={t: self.quantize[t] for t in TARGETS if t in self.targets and self.quantize.get(t)},
            opset=opset if opset != onnx.default_opset else None,
            tfjs_format=self.tfjs_format if "tfjs" in self.targets else "graph",
            keras_format=self.keras_format if "keras" in self.targets else "h5",
            tensorboard_logdir=self.tensorboard_logdir.strip() or None,
            force=self.force, trust_model=self.trust_model and bool(info.code_risks),
            sample_inputs=((parse_sample_input(normal_path(self.sample_input)),)
                           if self.checking and self.sample_input.strip() else ()),
            benchmark=self.checking and self.benchmark,
            custom_objects=tuple(_entries(self.custom_objects)) if info.custom_classes else (),
            op_libraries=tuple(_entries(self.op_libraries)) if info.custom_ops else (),
        )


def questions(step: str, answers: Answers) -> list[Question]:
    """The questions of `step`, given the answers so far (later answers depend on earlier ones)."""
    return _QUESTIONS.get(step, lambda a: [])(answers)


def _model_questions(a: Answers) -> list[Question]:
    return [Question("model", "text", "Model path", "a file (.pb, .pbtxt, .meta, .h5, .keras) or a SavedModel directory",
                     default=a.model, validate=lambda v: None if str(v).strip() else "give a path to a model",
                     completion="path")]


def _graph_questions(a: Answers) -> list[Question]:
    info, result = a.info, []
    if info.code_risks:  # never load such a model without a yes from the person at the keyboard
        result.append(Question("trust_model", "confirm", "Trust this model: loading it runs code from the file",
                               "; ".join(info.code_risks), default=a.trust_model,
                               validate=lambda v: None if v else "converting it runs that code: tick only for a "
                                                                 "model from a source you trust, or quit"))
    if info.custom_classes:  # Keras needs their code to rebuild the model
        result.append(Question("custom_objects", "text", f"Python file defining {', '.join(info.custom_classes)}",
                               "--custom-objects: its public classes and functions are given to Keras (a module:attr "
                               "import path works too; comma-separate several); without it Keras cannot load the model",
                               default=a.custom_objects, validate=_check_custom_objects, completion="path"))
    if info.custom_ops:  # TensorFlow must load the kernels before it can read the graph
        result.append(Question("op_libraries", "text", f"Op library (.so) defining {', '.join(info.custom_ops)}",
                               "--load-op-library: native code TensorFlow loads before the model (comma-separate "
                               "several); no target converts these ops, so cut them off at Shapes",
                               default=a.op_libraries, validate=_check_op_libraries, completion="path"))
    if len(info.tags) > 1:
        result.append(Question("tag", "select", "Tag set", "SavedModels keep one graph per tag set; 'serve' is for "
                               "inference (a Hub module's: none)",
                               choices=tuple((",".join(t), ",".join(t) or "(none)") for t in info.tags),
                               default=",".join(info.tag)))
    if len(info.signatures) > 1:
        result.append(Question("signature", "select", "Signature", "the entry point to convert",
                               choices=tuple((s, s) for s in info.signatures), default=info.signature))
    return result


def _shape_questions(a: Answers) -> list[Question]:
    from engine.options import parse_batch

    result = [Question("batch", "text", "Batch size", "blank keeps each input's own first dimension",
                       default=a.batch, validate=lambda v: _error_of(lambda: parse_batch(v)))]
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
    from engine.options import PRESETS

    choices = [("none", "none: the model takes its inputs as they are")]
    choices += [(p, f"{PRESET_FAMILIES[p]}: mean {_floats(m, sep=',')}, scale {_floats(s)}") for p, (m, s) in PRESETS.items()]
    choices.append(("custom", "custom mean and scale"))
    result = [Question("preprocessing", "select", "Preprocessing",
                       "presets: how each family was trained (TF-Slim; ResNet/VGG means are Caffe's, in BGR order)",
                       choices=tuple(choices), default=a.preprocessing)]
    if a.preprocessing == "custom":
        result += [
            Question("mean", "text", "Mean values", "subtracted per channel, e.g. 127.5 or 123.68,116.78,103.94",
                     default=a.mean, validate=lambda v: _check_floats(a, v, "--mean-values")),
            Question("scale", "text", "Scale values", "divided per channel after the mean, e.g. 127.5 or 1",
                     default=a.scale, validate=lambda v: _check_floats(a, v, "--scale-values")),
        ]
    if a.preprocessing != "none":
        result.append(Question("reverse_channels", "confirm", "Reverse input channels (RGB <-> BGR)",
                               "for a model trained on BGR images fed RGB ones, or the other way round",
                               default=a.reverse_channels))
    return result


def _target_questions(a: Answers) -> list[Question]:
    from engine.availability import unavailable
    from engine.backends import all_backends
    from engine.options import parse_targets

    blocked, missing = preflight(a.info, a.deep), unavailable()

    def note(b) -> str:
        if b.name in missing:  # an extra that is not installed: its reason and fix, in place of the note
            return missing[b.name]
        return f"{b.title}: " + (f"blocked by {', '.join(sorted(blocked[b.name]))}" if blocked.get(b.name) else b.note)

    def check(chosen) -> str | None:
        return _error_of(lambda: parse_targets(chosen)) or "; ".join(missing[t] for t in chosen if t in missing) or None

    offered = offered_targets(a.info)
    backends = [b for b in all_backends() if b.name in offered]
    result = [Question("targets", "multi", "Convert to", "one or more", choices=tuple((b.name, note(b)) for b in backends),
                       default=[t for t in a.targets if t in offered], validate=check)]
    for b in backends:
        if b.name not in a.targets:
            continue
        if b.quantizations:
            modes = (("", NO_QUANTIZATION + _weights_note(a.deep, b.name, "")),) + tuple((m, q.note + _weights_note(a.deep, b.name, m)) for m, q in b.quantizations.items())
            result.append(Question(f"quantize:{b.name}", "select", f"{b.title} quantization", "", choices=modes,
                                   default=a.get(f"quantize:{b.name}")))
        if b.name == "keras":
            result.append(Question("keras_format", "select", "Keras file", "", choices=tuple(b.formats.items()),
                                   default=a.keras_format))
        if b.name == "onnx":
            result.append(Question("opset", "text", "ONNX opset",
                                   f"blank for {b.default_opset}; newer runtimes take up to {b.max_opset}",
                                   default=a.opset, validate=lambda v, b=b: _error_of(lambda: b.parse_opset(v))))
        if b.name == "tfjs" and a.info.op_kind == "keras_layer":
            result.append(Question("tfjs_format", "select", "TF.js model type", "", choices=tuple(b.formats.items()),
                                   default=a.tfjs_format))
    return result


def _weights_note(deep: dict | None, target: str, mode: str) -> str:
    """The frozen graph's weight bytes with this quantization (`inspect --deep`), once known."""
    if deep is None:
        return ""
    from engine.text import human_size

    return f" · weights {human_size(deep['weight_bytes']['by_quantization'][target][mode or 'none'])}"


def _review_questions(a: Answers) -> list[Question]:
    result = [Question("output_dir", "text", "Output directory", "each target goes into a subdirectory of it",
                       default=a.output_dir or default_output_dir(a.model),
                       validate=lambda text: _check_output_dir(text, a.model), completion="path"),
              Question("tensorboard_logdir", "text", "TensorBoard log directory",
                       "blank for none; the original and the prepared graph, for tensorboard --logdir",
                       default=a.tensorboard_logdir, validate=lambda text: _check_logdir(text, a), completion="path")]
    from engine.output import needs_consent, replace_note

    out = Path(a.output_dir or default_output_dir(a.model))
    earlier = None if _check_output_dir(str(out), a.model) else needs_consent(out)
    if earlier:  # only an earlier tfwizard output can be replaced (engine.output)
        result.append(Question("force", "confirm", f"{out} holds an earlier tfwizard output: replace it",
                               f"replaces its {replace_note(earlier)}, only after a successful run",
                               default=a.force, validate=lambda v: None if v else "say yes to replace it, or choose another directory"))
    return result


def _check_questions(a: Answers) -> list[Question]:
    """Review's optional extras: verify on the user's own input, time each target."""
    image = any(i.shape and len(i.shape) == 4 for i in a.info.inputs)
    return [Question("sample_input", "text", "Check with my own input file (optional)",
                     ("a .png/.jpg (resized to the input; raw pixels, so the check covers the preprocessing) or "
                      if image else "") + ".npy/.npz with the input's values; blank: random test inputs",
                     default=a.sample_input, validate=lambda text: _check_sample_input(text, a), completion="path"),
            Question("benchmark", "confirm", "Time each target against TensorFlow (benchmark)",
                     "after the check: the median and p90 of 50 runs at batch 1 in each runtime",
                     default=a.benchmark)]


def review_action(*, dryrun: bool) -> Question:
    """What to do with the reviewed command. Not part of the conversion: front ends act on it."""
    choices = (() if dryrun else (("run", "Run it now"),)) + (
        ("print", "Print the command and stop" + (" (dry run: nothing is converted)" if dryrun else "")),
        ("check", "Check with my own input file, or time each target"),
        ("back", "Go back and change an answer"))
    return Question("action", "select", "Run or print?" if not dryrun else "Print the command?", "",
                    choices=choices, default=choices[0][0])


def back_question() -> Question:
    """Which step to return to from the review; the answers given so far stay as defaults."""
    choices = tuple((s.key, s.title) for s in STEPS if s.key in _QUESTIONS or s.key == "graph")
    return Question("back_to", "select", "Go back to", "", choices=choices, default="shapes")


_QUESTIONS = {"model": _model_questions, "graph": _graph_questions, "shapes": _shape_questions,
              "preprocess": _preprocess_questions, "targets": _target_questions, "review": _review_questions,
              "check": _check_questions}


# --- what the steps show besides questions --------------------------------------------------------


def load_model(path: str, *, tag: str | None = None, signature: str | None = None) -> tuple[Any, str]:
    """detect + inspect, and the text outline, from one read of the file and no TensorFlow:
    (ModelInfo, outline). Raises UserError with the message to show in place."""
    from engine.detect import detect
    from engine.inspect import inspect
    from engine.outline import outline

    path = normal_path(path)
    if not path:
        raise UserError("give a path to a model")
    detection = detect(path)
    info = inspect(detection, tag=tag, signature=signature)
    try:
        picture = "\n".join(outline(info, detection))
    except Exception as e:  # a picture of the graph is a nicety: never a reason the model can't be used
        picture = f"(no outline: {type(e).__name__}: {e})"
    return info, picture


def checked_options(a: Answers) -> ConversionOptions:
    """options(), checked the way `tfwizard convert` will check it before starting TensorFlow
    (input names, ranks, outputs); raises UserError with the message to show at the review."""
    from engine.plan import plan

    options = a.options()
    plan(options)
    return options


def preflight(info, deep: dict | None = None) -> dict[str, dict[str, str] | None]:
    """target → {op: why it blocks} from the op inventory, or None where that can't be known before
    converting (Keras layers become TF ops only when frozen; TFLite has no op list to check).
    `deep`: `inspect --deep`'s answer, whose verdicts on the frozen graph win."""
    from engine.backends import blocking_ops, get

    if deep is not None:
        return {t: None if deep["targets"][t]["verdict"] == "unknown" else deep["targets"][t]["blocked"]
                for t in offered_targets(info)}
    custom = [op for op in info.custom_ops if op in info.ops]  # no target converts these (--load-op-library)
    result = {}
    for t in offered_targets(info):
        backend = get(t)
        if info.op_kind == "tf_op" and backend.preflight_knows_ops:
            result[t] = blocking_ops(backend, dict(info.ops), custom)
        else:
            result[t] = blocking_ops(backend, {}, custom) or None
    return result


def offered_targets(info) -> tuple[str, ...]:
    """The targets to offer for this model: keras only where there are Keras layers to save."""
    from engine.backends import TARGETS

    return tuple(t for t in TARGETS if t != "keras" or (info is not None and info.op_kind == "keras_layer"))


def preflight_verdicts(info, deep: dict | None = None, waiting: str = "") -> list[tuple[str, str, str]]:
    """(target title, "ok" | "blocked" | "later", one line) per target, for both front ends; a target
    whose extra is not installed is "blocked" with the reason and its fix. `deep`: the frozen graph's
    verdicts (`inspect --deep`); `waiting`: what to say meanwhile where only that can tell."""
    from engine.availability import unavailable

    result, missing = [], unavailable()
    for target, ops in preflight(info, deep).items():
        title = target_title(target)
        if target in missing:  # not installed here: say so, with the command that installs it
            result.append((title, "blocked", missing[target].removeprefix(f"{title}: ")))
        elif target == "keras":  # offered for Keras-shaped models only (offered_targets): saved, not converted
            result.append((title, "ok", "the Keras model is saved again as it is"))
        elif deep is not None:
            from engine.deep import verdict_line

            verdict = deep["targets"][target]["verdict"]
            result.append((title, {"unknown": "later"}.get(verdict, verdict), verdict_line(deep["targets"][target])))
        elif ops is None:
            when = "once the Keras model is frozen to TF ops" if info.op_kind != "tf_op" else "while converting"
            result.append((title, "later", waiting or f"checked {when}"))
        elif ops:
            why = "; ".join(f"{op} ({reason})" for op, reason in sorted(ops.items()))
            result.append((title, "blocked", f"blocked by {why}"))
        else:
            result.append((title, "ok", "every op type is supported"))
    return result


def target_title(target: str) -> str:
    """'tfjs' → 'TensorFlow.js' (its backend's title)."""
    from engine.backends import get

    return get(target).title


def preprocessing_preview(a: Answers) -> str:
    """The formula the converted model applies, and what it does to the pixel range [0, 255]."""
    from engine.options import PRESETS, parse_floats

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


def normal_path(path: str) -> str:
    """'  ~/m.pb ' → '/home/me/m.pb': the command (and the child process) get no shell to expand '~'."""
    path = str(path).strip()
    return str(Path(path).expanduser()) if path else ""


MODEL_SUFFIXES = (".pbtxt", ".pb", ".meta", ".keras", ".h5", ".hdf5")  # the input forms' file names


def default_output_dir(model: str) -> str:
    """'models/resnet.pb' → 'resnet_converted' (in the working directory)."""
    name = Path(model.rstrip("/")).name or "model"
    for suffix in MODEL_SUFFIXES:
        name = name.removesuffix(suffix)
    return f"{name}_converted"


def shape_text(shape) -> str:
    return "" if shape is None else ",".join(map(str, shape))


def parse_shape(text: str, *, rank: int | None) -> tuple[int, ...]:
    from engine.options import parse_dim

    dims = tuple(parse_dim(d, "shape") for d in text.replace("[", "").replace("]", "").split(",") if d.strip())
    if not dims:
        raise UserError("shape: give the dimensions, e.g. 1,224,224,3")
    if rank is not None and len(dims) != rank:
        raise UserError(f"shape: the input has {rank} dimensions, not {len(dims)}")
    return dims


# --- the result ---------------------------------------------------------------------------------

def loading_snippet(target: str, path: str, report: dict, options: ConversionOptions, strategy: str | None = None) -> str:
    """Code that loads the converted model at `path` and runs it once on zeros of its real inputs
    (Python; JavaScript for tfjs): the backend's own snippet, fed the inputs report.json records."""
    from engine.backends import get
    from engine.inspect import TensorInfo

    recorded = report.get("interface", {}).get("inputs") or report.get("model", {}).get("inputs", [])  # older reports
    inputs = [TensorInfo(i["name"], i["dtype"], i["shape"]) for i in recorded]
    return get(target).snippet(path, inputs, options, strategy)


@dataclass(frozen=True)
class Outcome:
    """One target's result, from report.json, ready to show."""

    target: str
    title: str
    status: str  # "ok", "failed", "unsupported", "mismatch"
    message: str
    model_file: str  # the file to load: OUTDIR/<target>/<main file>
    files: dict[str, int]  # path (relative to OUTDIR) → bytes
    seconds: float
    check: str  # one line: the verification numbers and PASS/FAIL, or why there are none
    passed: bool | None  # None when not verified
    snippet: str  # loading_snippet(); "" when there is no model
    verification: dict  # report.json's, for a table of the numbers ({} when not verified)

    @property
    def verdict(self) -> str:
        return VERDICTS[self.passed]

    @property
    def size(self) -> int:
        return sum(self.files.values())


VERDICTS = {True: "pass", False: "FAIL", None: "-"}  # Outcome.passed → the word in a table


def outcomes(report: dict, options: ConversionOptions) -> list[Outcome]:
    """Per-target results of a finished run (report.json as a dict) of `options`, in run order."""
    from engine.backends import get
    from engine.report import verification_text

    result = []
    for t in report.get("targets", []):
        backend = get(t["target"])
        name = backend.main_file_for(options)
        model_file = str(Path(options.output_dir) / t["target"] / name)
        has_model = t["status"] in ("ok", "mismatch")
        check, passed = verification_text(t.get("verification"))
        if has_model and t.get("strategy") and t["strategy"] != "frozen graph":
            check += f"; converted from the {t['strategy']}"  # a later rung of the ladder (engine.ladder)
        result.append(Outcome(
            target=t["target"], title=target_title(t["target"]), status=t["status"], message=t.get("message", ""),
            model_file=model_file, files=dict(t.get("files", {})), seconds=t.get("seconds", 0.0), check=check,
            passed=passed, verification=t.get("verification") or {},
            snippet=loading_snippet(t["target"], model_file, report, options, t.get("strategy")) if has_model else ""))
    return result


def benchmark_chart(bench: dict, width: int = 24) -> str:
    """The --benchmark rows as two bar charts, latency (median) and size, one bar per runtime, each
    scaled to its largest value: for the Result step."""
    from engine.text import human_size

    rows = [r for r in bench.get("rows", []) if "median_ms" in r]
    if not rows:
        return ""
    label = max(len(r["runtime"]) for r in rows)
    lines = []
    for title, key, text in (("latency, median at batch 1", "median_ms", lambda r: f"{r['median_ms']:.2f} ms "
                              f"(p90 {r['p90_ms']:.2f}, {r['threads']} thread{'s' if r['threads'] != 1 else ''})"),
                             ("size", "bytes", lambda r: human_size(r["bytes"]))):
        top = max(r[key] for r in rows) or 1
        lines.append(title)
        for r in rows:
            n = r[key] / top * width
            bar = "█" * int(n) + ("▌" if n - int(n) >= 0.5 else "")
            lines.append(f"  {r['runtime']:<{label}}  {bar or '▏':<{width}}  {text(r)}")
    return "\n".join(lines)


# --- validators: an error message, or None --------------------------------------------------------


def _error_of(check: Callable[[], object]) -> str | None:
    try:
        check()
    except UserError as e:
        return str(e)
    return None


def _entries(text: str) -> list[str]:
    """'a.py, b.py' → ['a.py', 'b.py'] (paths with '~' expanded: the command gets no shell)."""
    return [normal_path(part) for part in str(text).split(",") if part.strip()]


def _check_custom_objects(text: str) -> str | None:
    from engine.user_code import is_file, parse_custom_objects

    for entry in _entries(text):
        if error := _error_of(lambda: parse_custom_objects(entry)):
            return error
        if is_file(entry) and not Path(entry).is_file():
            return f"{entry}: no such file; give the .py file that defines the custom classes"
    return None


def _check_op_libraries(text: str) -> str | None:
    entries = _entries(text)
    if not entries:
        return "give the .so file that defines the custom ops; TensorFlow cannot read the graph without it"
    missing = [e for e in entries if not Path(e).is_file()]
    return f"{missing[0]}: no such file; give the .so built with the custom ops" if missing else None


def _check_floats(a: Answers, text: str, flag: str) -> str | None:
    """A mean or scale answer, checked as the engine checks it: numbers (no scale of 0), and as many
    as the channels of an input the preprocessing can apply to (engine.interface)."""
    from engine.interface import preprocessing_inputs
    from engine.options import parse_floats

    def check():
        values = parse_floats(text, flag)
        mean, scale = (values, None) if flag == "--mean-values" else (None, values)
        preprocessing_inputs(a.info.inputs, mean, scale, a.reverse_channels)

    return _error_of(check) if str(text).strip() else None


def _check_sample_input(text: str, a: Answers) -> str | None:
    """Blank, or a file --sample-input takes for one of the model's inputs: the check plan() makes."""
    from engine.options import parse_sample_input
    from engine.sample_inputs import resolve

    if not str(text).strip():
        return None
    return _error_of(lambda: resolve((parse_sample_input(normal_path(text)),), a.info.inputs))


def _check_logdir(text: str, a: Answers) -> str | None:
    from engine.tensorboard import check_logdir

    return _error_of(lambda: check_logdir(str(text).strip(), a.model, a.output_dir or default_output_dir(a.model)))


def _check_output_dir(text: str, model: str | None = None) -> str | None:
    from engine.output import problem

    out = Path(str(text).strip() or ".")
    why = problem(out, model)
    return f"{out} {why}" if why else None


def _tag_text(tag) -> str | None:
    return ",".join(tag) if tag else None


def _pairs(mean, scale):
    n = max(len(mean), len(scale))
    return [(mean[min(k, len(mean) - 1)], scale[min(k, len(scale) - 1)]) for k in range(n)]


def _floats(values, sep: str = ", ") -> str:
    return "[" + sep.join(f"{v:g}" for v in values) + "]" if len(set(values)) > 1 else f"{values[0]:g}"
