"""Target backends behind one small interface. Adding a target = adding one module here.

Backend modules import their converter (and TensorFlow) only inside functions, so the
registry can be read by `inspect`, `--dryrun` and the wizard without the ~10 s import.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:  # only for type names; never imported at run time here
    import numpy as np

TARGETS = ("onnx", "tfjs", "openvino", "tflite")  # the order targets run in and are listed in


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


class Backend(Protocol):
    name: str  # "onnx"; the --to value and the OUTDIR subdirectory
    title: str  # "ONNX"
    main_file: str  # file inside OUTDIR/<name>/ that users load ("model.onnx")
    preflight_knows_ops: bool  # False: preflight() can't tell ahead of time; the conversion will
    # Optional: False if the upstream tool fails on a missing OUTDIR/<name>/ (the printed command
    # then starts with mkdir -p).
    upstream_creates_output_dir: bool = True

    def preflight(self, ops: dict[str, int]) -> dict[str, str]:
        """Ops (from the op inventory) this target cannot convert → why. Must not import TensorFlow."""

    # Optional: def check(self, options, info) -> None, raising UserError for options this target
    # can't honour for this model. plan() calls it, so it must not import TensorFlow: a bad option
    # is refused before anything is converted, and --dryrun and the wizard's review refuse it too.

    def upstream_command(self, options, info) -> list[str] | None:
        """argv of the upstream CLI that does this conversion directly, or None if it can't.

        "This conversion" means: the same outputs for the same inputs. So None when the upstream
        cannot read the input form, bake in the preprocessing, cut the outputs or quantize as asked;
        shape overrides are passed where the upstream has a working flag for them and otherwise
        left out (its model then keeps the dynamic dims, and computes the same numbers).
        """

    def convert(self, prepared: Prepared, options, outdir: Path, log: Callable[[str], None]) -> None:
        """Write the converted model into `outdir` (an empty temporary directory)."""

    def load(self, outdir: Path, prepared: Prepared) -> Runner:
        """Load the converted model; return a function feeds-by-input-name → outputs-by-output-name."""

    def tolerance(self, options) -> Tolerance:
        """What verification accepts for these options (FLOAT32_TOLERANCE or quantized_tolerance())."""


def get(name: str) -> Backend:
    if name not in TARGETS:
        raise KeyError(name)
    return importlib.import_module(f"engine.backends.{name}").BACKEND
