"""One options object for a conversion; it renders itself as the `tfwizard convert` command.

The wizard builds a ConversionOptions, shows `options.command()`, and runs exactly that
command. `parse_*` helpers turn command-line text into typed values with one-line errors.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, fields

from .errors import UserError

# Seed 001 (TF-Slim / OpenVINO docs): what each model family expects its pixels to be.
PRESETS = {
    "inception": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),
    "mobilenet": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),
    "nasnet": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),
    "resnet": ((103.94, 116.78, 123.68), (1.0, 1.0, 1.0)),
    "vgg": ((103.94, 116.78, 123.68), (1.0, 1.0, 1.0)),
}
QUANTIZATIONS = {
    "onnx": ("float16", "int8"),
    "tfjs": ("float16", "uint8", "uint16"),
    "openvino": ("fp16",),
    "tflite": ("dynamic", "float16"),
}
DEFAULT_SHARD_BYTES = 4 * 1024 * 1024


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
    quantize: tuple[str, ...] = ()  # "target:mode" or, for tfjs, "tfjs:mode:node*,pattern*"
    opset: int | None = None
    inputs_as_nchw: tuple[str, ...] = ()  # ONNX
    tfjs_format: str = "graph"  # "graph" or "layers" (Keras inputs only)
    keras_format: str = "h5"  # the keras target's file: "h5" (model.h5) or "keras" (model.keras)
    weight_shard_size_bytes: int = DEFAULT_SHARD_BYTES
    split_weights_by_layer: bool = False
    strip_debug_ops: bool = True
    control_flow_v2: bool = False
    use_structured_outputs_names: bool = False
    metadata: tuple[str, ...] = ()  # tfjs "key:path.json"
    tensorboard_logdir: str | None = None  # write the original and the prepared graph there (engine.tensorboard)
    trust_model: bool = False  # load Keras Lambda layers / custom objects, which run code from the file
    verify: bool = True
    force: bool = False
    report: str | None = None
    progress: str = "text"  # "text" for people, "json" for lines a UI reads

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
        for q in self.quantize:
            t, _, mode = q.partition(":")
            if t == target:
                return mode.split(":")[0]
        return None

    def quantize_nodes(self, target: str) -> list[str]:
        """tfjs only: node name patterns the quantization is restricted to (empty = all)."""
        for q in self.quantize:
            parts = q.split(":", 2)
            if parts[0] == target and len(parts) == 3:
                return [p for p in parts[2].split(",") if p]
        return []

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
        for q in self.quantize:
            out += ["--quantize", q]
        if self.opset is not None:
            out += ["--opset", str(self.opset)]
        if self.inputs_as_nchw:
            out += ["--inputs-as-nchw", ",".join(self.inputs_as_nchw)]
        if self.tfjs_format != "graph":
            out += ["--tfjs-format", self.tfjs_format]
        if self.keras_format != "h5":
            out += ["--keras-format", self.keras_format]
        if self.weight_shard_size_bytes != DEFAULT_SHARD_BYTES:
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


def human_size(n: float) -> str:
    """A file size for people, in decimal units as file managers show them: '812 bytes', '2.7 kB', '97.3 MB'."""
    for unit in ("bytes", "kB", "MB"):
        if round(n, 1) < 1000:  # 999,950 bytes is "1.0 MB", not "1000.0 kB"
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def parse_quantize(text: str) -> str:
    target, _, mode = text.partition(":")
    mode_name = mode.split(":")[0]
    if mode_name not in QUANTIZATIONS.get(target, ()):
        choices = ", ".join(f"{t}:{m}" for t, ms in QUANTIZATIONS.items() for m in ms)
        raise UserError(f"--quantize {text!r}: unknown; choose from {choices}")
    if ":" in mode and target != "tfjs":
        raise UserError(f"--quantize {text!r}: node patterns are supported for tfjs only")
    return text


def parse_targets(text: str) -> tuple[str, ...]:
    from .backends import TARGETS

    targets = tuple(dict.fromkeys(t.strip().lower() for t in text.split(",") if t.strip()))
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise UserError(f"--to {text!r}: unknown target {', '.join(unknown) or '(none)'}; choose from {','.join(TARGETS)}")
    return targets
