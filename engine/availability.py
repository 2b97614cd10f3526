"""Which targets this install can convert to, and for the others why not and what brings them back.

Each target is an extra of the package (pip install 'tfwizard[onnx]', optimum's convention). We
look for the modules a target's conversion and verification import with importlib.util.find_spec,
which finds a module without importing it: tensorflowjs alone imports jax, flax and TensorFlow
(~10 s), and inspect, --dryrun and the wizard must not pay for that.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec

TITLES = {"onnx": "ONNX", "tfjs": "TF.js", "openvino": "OpenVINO", "tflite": "TFLite", "keras": "Keras"}

# target → the top-level modules it imports (what its extra in pyproject.toml installs)
MODULES = {
    "onnx": ("tf2onnx", "onnx", "onnxruntime"),
    "tfjs": ("tensorflowjs",),
    "openvino": ("openvino",),
    "tflite": ("ai_edge_litert",),  # verification; the converter is TensorFlow's own tf.lite
    "keras": ("keras", "tf_keras"),  # in the base install: Keras files are saved with what loaded them
}

# target → (first Python it cannot install on, why): pyproject's extra carries the same marker.
PYTHON_LIMIT = {
    # tensorflowjs 4.22 pulls tensorflow-decision-forests, which pins TensorFlow 2.19 exactly
    "tfjs": ((3, 13), "tensorflowjs 4.22 needs TensorFlow 2.19, which has no Python 3.13 build"),
}


def unavailable_reason(target: str) -> str | None:
    """One line naming why `target` can't be converted to here and the fix; None if it can."""
    missing = [m for m in MODULES[target] if find_spec(m) is None]
    if not missing:
        return None
    title = TITLES[target]
    limit = PYTHON_LIMIT.get(target)
    if limit and sys.version_info[:2] >= limit[0]:
        version = ".".join(map(str, sys.version_info[:2]))
        last = f"{limit[0][0]}.{limit[0][1] - 1}"
        return f"{title}: not available on Python {version} ({limit[1]}) — use Python {last} or older"
    return f"{title}: not installed (no module {', '.join(missing)}) — pip install 'tfwizard[{target}]'"


def unavailable(targets=tuple(MODULES)) -> dict[str, str]:
    """target → reason, for the targets of `targets` this install cannot convert to."""
    return {t: r for t in targets if (r := unavailable_reason(t))}


def available(targets=tuple(MODULES)) -> list[str]:
    missing = unavailable(targets)
    return [t for t in targets if t not in missing]


def version_text() -> str:
    """`tfwizard --version`: our version, Python's and TensorFlow's, and each target's state."""
    from importlib.metadata import PackageNotFoundError, version

    def of(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "not installed"

    python = ".".join(map(str, sys.version_info[:3]))
    lines = [f"tfwizard {of('tfwizard')} (Python {python}, TensorFlow {of('tensorflow')})"]
    missing = unavailable()
    for target, title in TITLES.items():
        lines.append(f"  {target:<9} " + (missing[target] if target in missing else f"{title}: available"))
    return "\n".join(lines)
