"""Target backends behind one base class (Backend). Adding a target = adding one module here and its
name to TARGETS.

Backend modules import their converter (and TensorFlow) only inside functions, so the
registry can be read by `inspect`, `--dryrun` and the wizard without the ~10 s import.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # only for type names; never imported at run time here
    import numpy as np

TARGETS = ("onnx", "tfjs", "openvino", "tflite", "keras")  # the order targets run in and are listed in


@dataclass
class Prepared:
    """The model, normalised once by TensorFlow, that every target converts from.

    `graph_def` is a frozen tf.compat.v1.GraphDef: inputs are Placeholders named `inputs[i].name`
    (final shapes: overrides and --batch applied), the preprocessing (reverse channels, mean,
    scale) is already inside the graph right after them, and each output is an Identity node
    named `outputs[i]`. `graph_path` is the same GraphDef written as binary .pb. `keras_path` is
    the original Keras file for Keras inputs (TF.js layers models are converted from it).
    """

    graph_def: object
    graph_path: Path
    inputs: list  # engine.inspect.TensorInfo, in feed order; shape list with -1 for dynamic dims
    outputs: list[str]
    keras_path: Path | None = None  # the original Keras file, when the input is one
    has_preprocessing: bool = False
    # Which rung of the strategy ladder this is ("frozen graph", "saved model, control flow v2"),
    # and the next one: a function making the same model frozen with control flow v2 kept, or
    # None when there is none (engine.prepare, engine.ladder).
    strategy: str = "frozen graph"
    alternative: Callable[[], "Prepared | None"] | None = None
    # A large model's weights (engine.prepare.LARGE_MODEL_BYTES), left out of graph_def: there each is a
    # Placeholder of this name, dtype and shape, which the target turns back into a constant of this value.
    weights: dict[str, "np.ndarray"] = field(default_factory=dict)


@dataclass(frozen=True)
class Tolerance:
    """What verification accepts, per element: |got - ref| <= atol + rtol * |ref| (numpy.allclose).

    `scaled`: atol is a fraction of the output's largest |ref|. Quantized targets use it, since their
    error scales with the output as a whole, not with each element (see engine.verify.compare).
    """

    atol: float
    rtol: float
    scaled: bool = False


FLOAT32_TOLERANCE = Tolerance(1e-4, 1e-4)  # OpenVINO's layer tests' values


def quantized_tolerance(bits: int) -> Tolerance:
    """16-bit weights: 1e-2 of the output's largest magnitude (+ 1e-2 relative); 8-bit: 1e-1."""
    return Tolerance(1e-2, 1e-2, scaled=True) if bits == 16 else Tolerance(1e-1, 1e-1, scaled=True)


Runner = Callable[[dict[str, "np.ndarray"]], dict[str, "np.ndarray"]]


class ConversionFailed(Exception):
    """A target cannot convert this model (raised by Backend.convert); the message names the ops
    and their nodes. The pipeline reports it for that target and goes on with the others."""


class VerifierUnavailable(Exception):
    """Verification cannot run here (raised by Backend.load, e.g. no Node.js or npm for TF.js); the
    pipeline reports 'skipped: <reason>' instead of a failure."""


@dataclass(frozen=True)
class Quantization:
    """One --quantize mode of a target: the bits its weights keep, which sets what verification
    accepts, and one line on what it trades (the wizard's choice)."""

    bits: int
    note: str

    @property
    def tolerance(self) -> Tolerance:
        return quantized_tolerance(self.bits)


class Backend:
    """Every fact of one target, and its conversion. A target is one module here holding a subclass
    and `BACKEND = ItsBackend()`, plus its name in TARGETS; the wizard, the CLI's help, the
    availability check and the tests read these facts, not copies of them.

    The class attributes and the methods that take no Prepared must not import TensorFlow or the
    converter: `inspect`, `--dryrun` and the wizard read them (tests/test_layering.py).
    """

    name: str  # "onnx"; the --to value and the OUTDIR subdirectory
    title: str  # "TensorFlow.js": what the wizard and the report call it
    short_title: str = ""  # "TF.js": in one-line messages (engine.availability); the title if blank
    note: str = ""  # where it runs, one line for the wizard's list of targets
    main_file: str  # file inside OUTDIR/<name>/ that users load ("model.onnx")
    runtime: str  # what runs it for verification and --benchmark ("onnxruntime (CPU)")
    benchmark_threads: int | None = None  # the threads its runtime really uses, if fixed; None: what it is given
    modules: tuple[str, ...] = ()  # the top-level modules it imports: what its extra installs
    # (first Python its extra cannot install on, why); pyproject's extra carries the same marker
    python_limit: tuple[tuple[int, int], str] | None = None
    quantizations: dict[str, Quantization] = {}  # --quantize NAME:MODE → its facts
    quantize_nodes: bool = False  # --quantize NAME:MODE:pattern,... restricts it to some nodes
    preflight_knows_ops = False  # True: preflight() can tell from the op inventory what will fail
    upstream_creates_output_dir = True  # False: the upstream tool fails on a missing OUTDIR/<name>/
    # (the printed command then starts with mkdir -p)

    # Why a custom op (one TensorFlow itself does not register: --load-op-library) blocks this
    # target, and what would map it; preflight names every custom op with it (blocking_ops()).
    custom_op: str = ""

    @property
    def label(self) -> str:
        return self.short_title or self.title

    def main_file_for(self, options) -> str:
        """The file users load for these options (main_file, unless an option picks another kind)."""
        return self.main_file

    def check_options(self, options) -> None:
        """Raise UserError for options this target can't honour whatever the model. Called by
        ConversionOptions itself, so the CLI, --dryrun and both wizard faces refuse the same things."""

    def check(self, options, info) -> None:
        """Raise UserError for options this target can't honour for this model (engine.inspect's
        ModelInfo). plan() calls it before anything is converted, so --dryrun and the wizard's review
        refuse them too."""

    def preflight(self, ops: dict[str, int]) -> dict[str, str]:
        """Ops (from the op inventory) this target cannot convert → why (see preflight_knows_ops)."""
        return {}

    def upstream_command(self, options, info) -> list[str] | None:
        """argv of the upstream CLI that does this conversion directly, or None if it can't.

        "This conversion" means: the same outputs for the same inputs. So None when the upstream
        cannot read the input form, bake in the preprocessing, cut the outputs or quantize as asked;
        shape overrides are passed where the upstream has a working flag for them and otherwise
        left out (its model then keeps the dynamic dims, and computes the same numbers).
        """
        return None

    def strategies(self, prepared: Prepared):
        """The ladder's rungs (engine.ladder), as (name, Prepared, convert): the shared frozen graph,
        then (built only if reached) the model frozen with control flow v2 kept. A backend with
        last resorts of its own extends this list (TFLite)."""
        yield prepared.strategy, prepared, self.convert
        v2 = prepared.alternative() if prepared.alternative else None
        if v2 is not None:
            yield v2.strategy, v2, self.convert

    def convert(self, prepared: Prepared, options, outdir: Path, log: Callable[[str], None]) -> None:
        """Write the converted model into `outdir` (an empty temporary directory)."""
        raise NotImplementedError

    def load(self, outdir: Path, prepared: Prepared, threads: int | None = None) -> Runner:
        """Load the converted model; return a function feeds-by-input-name → outputs-by-output-name.
        `threads`: the runtime's thread count (--benchmark gives every runtime the same); None: its default.
        A runner may carry `timed(feeds, runs, warmup) -> [ms]` to be timed inside its runtime (TF.js)."""
        raise NotImplementedError

    def snippet(self, path: str, inputs, options, strategy: str | None = None) -> str:
        """Code that loads the model at `path` and runs it once on zeros of `inputs` (TensorInfo-like:
        name, dtype, shape), as printed by the Result step; it must run as printed (tests/test_snippets.py)."""
        raise NotImplementedError

    def tolerance(self, options) -> Tolerance:
        """What verification accepts for these options: float32's, or the quantization's."""
        mode = self.quantizations.get(options.quantization(self.name))
        return mode.tolerance if mode else FLOAT32_TOLERANCE


# --- loading snippets: each backend's snippet(path, inputs, options, strategy) prints code that loads its
# model and runs it once on zeros of the real input names, dtypes and shapes (the Result step shows it).

EXAMPLE_DIM = 8  # a dynamic dim other than the batch (engine.verify uses the same)


def example_shape(shape) -> list[int]:
    """A concrete shape for a snippet's example input: batch 1, other dynamic dims EXAMPLE_DIM."""
    if shape is None:
        return [1, EXAMPLE_DIM]
    return [d if d > 0 else (1 if k == 0 else EXAMPLE_DIM) for k, d in enumerate(shape)]


def numpy_zeros(i, shape=None) -> str:
    """Python source for an example array for input `i` (name, dtype, shape)."""
    shape = example_shape(i.shape) if shape is None else shape
    if i.dtype == "string":
        return f'np.full({shape}, b"word", dtype=object)'
    return f"np.zeros({shape}, np.{i.dtype or 'float32'})"


def quoted(text: str) -> str:
    """A string literal valid in Python and JavaScript alike."""
    import json

    return json.dumps(str(text))


def blocking_ops(backend: Backend, ops: dict[str, int], custom_ops=()) -> dict[str, str]:
    """The ops (op type → why) that keep `backend` from converting: its own preflight, and every custom op."""
    return {**backend.preflight(ops), **{op: f"{backend.custom_op}; or cut it off with --output" for op in custom_ops}}


def get(name: str) -> Backend:
    if name not in TARGETS:
        raise KeyError(name)
    return importlib.import_module(f"engine.backends.{name}").BACKEND


def all_backends() -> list[Backend]:
    """Every target's backend, in TARGETS order (importing them is cheap: see the module docstring)."""
    return [get(name) for name in TARGETS]
