"""One options object for a conversion; it checks itself and renders itself as the `tfwizard convert`
command.

The wizard builds a ConversionOptions, shows `options.command()`, and runs exactly that
command. Building one is the gate every face shares: a value no model could be converted with is
refused by ConversionOptions itself (and each chosen target's Backend.check_options), with the
same one-line message for the CLI, --dryrun and both wizard faces; what needs the model read is
checked by engine.plan. `parse_*` helpers turn command-line text into typed values.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, fields

from .errors import UserError

# Seed 001 (TF-Slim / OpenVINO docs): what each model family expects its pixels to be.
PRESETS = {
    "inception": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),
    "mobilenet": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),
    "nasnet": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),
    "resnet": ((103.94, 116.78, 123.68), (1.0, 1.0, 1.0)),
    "vgg": ((103.94, 116.78, 123.68), (1.0, 1.0, 1.0)),
}
DEFAULT_BENCHMARK_RUNS = 50


@dataclass(frozen=True)
class ConversionOptions:
    model: str
    targets: tuple[str, ...]
    output_dir: str
    inputs: tuple[tuple[str, tuple[int, ...]], ...] = ()  # shape overrides: (name, dims), -1 = dynamic
    outputs: tuple[str, ...] = ()  # cut the graph at these outputs
    freeze: tuple[tuple[str, str], ...] = ()  # (input name, value text): baked in as a constant
    batch: int | None = None
    tag: str | None = None
    signature: str | None = None
    checkpoint: str | None = None
    mean_values: tuple[float, ...] | None = None
    scale_values: tuple[float, ...] | None = None
    reverse_input_channels: bool = False
    preset: str | None = None
    # target → (mode, node name patterns it is restricted to; () = all): {"tfjs": ("uint8", ("conv*",))}.
    # A bare mode stands for (mode, ()). The modes are each backend's `quantizations`.
    quantize: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict, hash=False)
    opset: int | None = None
    inputs_as_nchw: tuple[str, ...] = ()  # ONNX
    tfjs_format: str = "graph"  # "graph" or "layers" (Keras inputs only)
    keras_format: str = "h5"  # the keras target's file: "h5" (model.h5) or "keras" (model.keras)
    weight_shard_size_bytes: int | None = None  # TF.js; None: tensorflowjs' default (4 MiB)
    split_weights_by_layer: bool = False
    strip_debug_ops: bool = True
    control_flow_v2: bool = False
    use_structured_outputs_names: bool = False
    metadata: tuple[str, ...] = ()  # tfjs "key:path.json"
    tensorboard_logdir: str | None = None  # write the original and the prepared graph there (engine.tensorboard)
    trust_model: bool = False  # load Keras Lambda layers / custom objects, which run code from the file
    sample_inputs: tuple[tuple[str, str], ...] = ()  # (input name or "", file): real inputs for verification
    benchmark: bool = False  # time each converted model in its runtime against TensorFlow (engine.benchmark)
    benchmark_runs: int = DEFAULT_BENCHMARK_RUNS
    custom_objects: tuple[str, ...] = ()  # Keras custom classes: PATH.py or module[:attr] (engine.user_code)
    op_libraries: tuple[str, ...] = ()  # TensorFlow custom op libraries (.so), loaded before the model
    verify: bool = True
    force: bool = False
    report: str | None = None
    progress: str = "text"  # "text" for people, "json" for lines a UI reads

    def __post_init__(self):
        """The one gate (see the module docstring); also puts values in one form: targets
        deduplicated, ports stripped from --inputs-as-nchw names, a bare quantize mode made a pair."""
        from .backends import get

        def normal(name, value):
            object.__setattr__(self, name, value)  # frozen: only here, before anyone has seen it

        # No target at all is allowed here: `inspect --deep` freezes without converting (engine.deep);
        # --to and the wizard's Targets question refuse an empty choice themselves.
        normal("targets", parse_targets(self.targets) if self.targets else ())
        quantize = self.quantize if isinstance(self.quantize, dict) else parse_quantize(self.quantize)  # "target:mode"s
        normal("quantize", {t: (q, ()) if isinstance(q, str) else (q[0], tuple(q[1])) for t, q in quantize.items()})
        normal("inputs_as_nchw", tuple(strip_port(n) for n in self.inputs_as_nchw))
        parse_batch(self.batch)
        for name, dims in self.inputs:
            for d in dims:
                parse_dim(str(d), f"--input {name!r}")
        for name, value in self.freeze:
            parse_freeze_value(value, f"--freeze {name}={value}")
        if self.preset is not None and self.preset not in PRESETS:
            raise UserError(f"--preset {self.preset}: unknown; choose from {', '.join(PRESETS)}")
        for flag, values in (("--mean-values", self.mean_values), ("--scale-values", self.scale_values)):
            if values is not None:
                parse_floats(_floats(values), flag)  # not empty, and no scale of 0
        if self.weight_shard_size_bytes is not None and self.weight_shard_size_bytes <= 0:
            raise UserError("--weight-shard-size-bytes must be positive; e.g. 4194304 (4 MiB, the default)")
        for target, (mode, nodes) in self.quantize.items():
            _check_quantize(target, mode, nodes, self.targets)
        if self.benchmark_runs <= 0:
            raise UserError(f"--benchmark-runs {self.benchmark_runs}: not a positive number of runs; e.g. --benchmark-runs 50")
        if (self.sample_inputs or self.benchmark) and not self.verify:
            flag = "--sample-input" if self.sample_inputs else "--benchmark"
            raise UserError(f"{flag} needs the check against TensorFlow, which --no-verify turns off; drop one of them")
        for target in self.targets:
            get(target).check_options(self)

    # --- derived ---------------------------------------------------------------------------

    @property
    def mean_scale(self) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
        """(mean, scale) with a preset resolved; explicit values win over the preset."""
        mean, scale = PRESETS.get(self.preset, (None, None)) if self.preset else (None, None)
        return (self.mean_values or mean, self.scale_values or scale)

    @property
    def has_preprocessing(self) -> bool:
        mean, scale = self.mean_scale
        return bool(mean or scale or self.reverse_input_channels)

    def quantization(self, target: str) -> str | None:
        """The quantization mode chosen for `target` ("float16"), or None."""
        return self.quantize.get(target, (None, ()))[0]

    def quantize_nodes(self, target: str) -> list[str]:
        """Node name patterns the quantization of `target` is restricted to (empty = all)."""
        return list(self.quantize.get(target, (None, ()))[1])

    # --- rendering -------------------------------------------------------------------------

    def argv(self) -> list[str]:
        """`tfwizard convert ...` as argv, defaults left out, in a stable order."""
        out = ["tfwizard", "convert", self.model, "--to", ",".join(self.targets), "-o", self.output_dir]
        for name, dims in self.inputs:
            out += ["--input", f"{name}[{','.join(map(str, dims))}]"]
        for name in self.outputs:
            out += ["--output", name]
        for name, value in self.freeze:
            out += ["--freeze", f"{name}={value}"]
        pairs = [("--batch", self.batch), ("--tag", self.tag), ("--signature", self.signature),
                 ("--checkpoint", self.checkpoint), ("--preset", self.preset)]
        out += [x for flag, value in pairs if value is not None for x in (flag, str(value))]
        if self.mean_values:
            out += ["--mean-values", _floats(self.mean_values)]
        if self.scale_values:
            out += ["--scale-values", _floats(self.scale_values)]
        if self.reverse_input_channels:
            out.append("--reverse-input-channels")
        for target, (mode, nodes) in self.quantize.items():
            out += ["--quantize", _quantize_text(target, mode, nodes)]
        if self.opset is not None:
            out += ["--opset", str(self.opset)]
        if self.inputs_as_nchw:
            out += ["--inputs-as-nchw", ",".join(self.inputs_as_nchw)]
        if self.tfjs_format != "graph":
            out += ["--tfjs-format", self.tfjs_format]
        if self.keras_format != "h5":
            out += ["--keras-format", self.keras_format]
        if self.weight_shard_size_bytes is not None:
            out += ["--weight-shard-size-bytes", str(self.weight_shard_size_bytes)]
        for flag, on in (("--split-weights-by-layer", self.split_weights_by_layer),
                         ("--keep-debug-ops", not self.strip_debug_ops),
                         ("--control-flow-v2", self.control_flow_v2),
                         ("--use-structured-outputs-names", self.use_structured_outputs_names),
                         ("--trust-model", self.trust_model), ("--no-verify", not self.verify), ("--force", self.force)):
            if on:
                out.append(flag)
        for m in self.metadata:
            out += ["--metadata", m]
        for name, path in self.sample_inputs:
            out += ["--sample-input", f"{name}={path}" if name else path]
        if self.benchmark:
            out.append("--benchmark")
        if self.benchmark_runs != DEFAULT_BENCHMARK_RUNS:
            out += ["--benchmark-runs", str(self.benchmark_runs)]
        for spec in self.custom_objects:
            out += ["--custom-objects", spec]
        for lib in self.op_libraries:
            out += ["--load-op-library", lib]
        if self.tensorboard_logdir:
            out += ["--tensorboard-logdir", self.tensorboard_logdir]
        if self.report:
            out += ["--report", self.report]
        if self.progress != "text":
            out += ["--progress", self.progress]
        return out

    def command(self) -> str:
        from .text import shell_join

        return shell_join(self.argv())  # $'...' for arguments with control characters (engine.text)

    def replace(self, **changes) -> "ConversionOptions":
        return type(self)(**{f.name: changes.get(f.name, getattr(self, f.name)) for f in fields(self)})


def _floats(values) -> str:
    return "[" + ",".join(f"{v:g}" for v in values) + "]"


# --- parsing command-line text -------------------------------------------------------------------

_INPUT = re.compile(r"^\s*([^\[\]]+?)\s*(?:\[(.*)\])?\s*$")


def strip_port(name: str) -> str:
    """'input:0' → 'input'; users may give tensor names or node names."""
    return re.sub(r":0$", "", name.strip())


def parse_input(text: str) -> tuple[str, tuple[int, ...]]:
    """'NAME[1,224,224,3]' → ('NAME', (1, 224, 224, 3)); '-1' or '?' keeps a dim dynamic."""
    m = _INPUT.match(text)
    if not m or m.group(2) is None:
        raise UserError(f"--input {text!r}: not NAME[d1,d2,...]; write e.g. 'input[1,224,224,3]' (-1 or ? for dynamic)")
    name, dims = strip_port(m.group(1)), m.group(2).strip()
    return name, tuple(parse_dim(d, f"--input {text!r}") for d in dims.split(",")) if dims else ()


def parse_freeze(text: str) -> tuple[str, str]:
    """'keep_prob=1.0' → ('keep_prob', '1.0'); the value is a number, true/false or a list '[1,2]'."""
    name, sep, value = text.partition("=")
    name, value = strip_port(name), value.strip()
    if not sep or not name:
        raise UserError(f"--freeze {text!r}: not NAME=VALUE; write e.g. 'keep_prob=1.0'")
    parse_freeze_value(value, f"--freeze {text!r}")
    return name, value


def parse_freeze_value(text: str, where: str = "--freeze"):
    """A --freeze value: a float, a bool, or a flat list of them."""
    body = text.strip()
    items = body[1:-1].split(",") if body.startswith("[") and body.endswith("]") else [body]
    values = []
    for item in (x.strip() for x in items):
        if item.lower() in ("true", "false"):
            values.append(item.lower() == "true")
            continue
        try:
            values.append(float(item))
        except ValueError:
            raise UserError(f"{where}: value {item!r} is not a number or true/false; write e.g. 1.0 or '[1,2,3]'") from None
    return values if body.startswith("[") else values[0]


def parse_sample_input(text: str) -> tuple[str, str]:
    """'image=cat.png' → ('image', 'cat.png'); 'cat.png' → ('', 'cat.png'): the input is then the only
    one it fits (engine.sample_inputs). A path that exists as given is a path, even with '=' in it."""
    import os

    name, sep, path = text.partition("=")
    if not sep or os.path.exists(text) or not name.strip() or "/" in name:
        return "", text
    if not path.strip():
        raise UserError(f"--sample-input {text!r}: no file after '='; write NAME=FILE, e.g. image=cat.png")
    return strip_port(name), path


def parse_dim(text: str, where: str) -> int:
    """A dimension is a positive integer, or -1 / ? for dynamic."""
    text = text.strip()
    if text in ("?", "-1", "None"):
        return -1
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise UserError(f"{where}: dimension {text!r} is not a positive integer; use one, or -1 / ? for a dynamic dim")


def parse_floats(text: str, flag: str) -> tuple[float, ...]:
    """'[127.5,127.5,127.5]' or '127.5' → floats; a scalar stands for every channel."""
    body = text.strip().removeprefix("[").removesuffix("]")
    try:
        values = tuple(float(v) for v in body.replace(" ", ",").split(",") if v)
    except ValueError:
        values = ()
    if not values:
        raise UserError(f"{flag} {text!r}: not a list of numbers; write e.g. '[127.5,127.5,127.5]' or '127.5'")
    if flag.startswith("--scale") and any(v == 0 for v in values):
        raise UserError(f"{flag} {text!r}: a scale of 0 would divide by zero; use 1 for no scaling")
    return values


def parse_quantize(texts) -> dict[str, tuple[str, tuple[str, ...]]]:
    """--quantize values, 'target:mode' or 'target:mode:node*,pattern*', as ConversionOptions.quantize."""
    result = {}
    for text in texts:
        target, _, rest = text.partition(":")
        mode, _, nodes = rest.partition(":")
        if target in result:
            count = sum(t.partition(":")[0] == target for t in texts)
            raise UserError(f"--quantize given {count} times for {target}; keep one mode")
        result[target] = (mode, tuple(p.strip() for p in nodes.split(",") if p.strip()))
    return result


def _quantize_text(target: str, mode: str, nodes) -> str:
    return ":".join([target, mode] + ([",".join(nodes)] if nodes else []))


def _check_quantize(target: str, mode: str, nodes, targets) -> None:
    from .backends import TARGETS, all_backends, get

    text = _quantize_text(target, mode, nodes)
    if target not in TARGETS or mode not in get(target).quantizations:
        choices = ", ".join(f"{b.name}:{m}" for b in all_backends() for m in b.quantizations)
        raise UserError(f"--quantize {text!r}: unknown; choose from {choices}")
    if nodes and not get(target).quantize_nodes:
        which = ", ".join(b.name for b in all_backends() if b.quantize_nodes)
        raise UserError(f"--quantize {text!r}: node patterns are supported for {which} only")
    if target not in targets:
        raise UserError(f"--quantize {text}: {target} is not converted (--to {','.join(targets)}); "
                        f"add it to --to or drop the flag")


def parse_targets(value) -> tuple[str, ...]:
    """--to 'onnx,TFLite' (or the targets as a sequence) → ('onnx', 'tflite'): known, each once, in order."""
    from .backends import TARGETS

    items = value.split(",") if isinstance(value, str) else value
    targets = tuple(dict.fromkeys(t.strip().lower() for t in items if t.strip()))
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise UserError(f"--to {','.join(targets)}: unknown target {', '.join(unknown)}; choose from {','.join(TARGETS)}")
    if not targets:
        raise UserError(f"--to: choose at least one target of {','.join(TARGETS)}")
    return targets


def parse_batch(value) -> int | None:
    """--batch: a positive integer; None or blank (the wizard's answer) keeps each input's own first dim."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    if text.isdigit() and int(text) > 0:
        return int(text)
    shown = text if text.lstrip("-").isdigit() else repr(text)
    raise UserError(f"--batch {shown}: must be a positive integer, or blank (no --batch) to keep each input's "
                    "own first dimension; e.g. --batch 1")
