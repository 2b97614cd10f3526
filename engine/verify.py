"""Seeded inputs for a model, and the comparison of a target's outputs with TensorFlow's."""

from __future__ import annotations

import numpy as np

from .errors import UserError

MAX_FEED_BYTES = 1 << 30  # per input: a [-1,100000,100000] float input would need 80 GB of test data
SEED = 20261121
DYNAMIC_BATCH, DYNAMIC_DIM, UNKNOWN_RANK_SHAPE = 2, 8, (2, 8)


def make_feeds(inputs, *, raw_pixels: bool = False, seed: int = SEED) -> dict[str, np.ndarray]:
    """Random inputs matching each input's dtype and shape, in ranges the model can take.

    Floats are uniform in [0, 1), or [0, 255] when the model takes raw pixels (preprocessing
    baked in); integers in [0, 10) so they stay valid as indices; booleans False/True.
    Dynamic dims become 2 for the batch and 8 elsewhere.
    """
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in inputs:
        if i.shape is None:
            shape = UNKNOWN_RANK_SHAPE
        else:
            shape = tuple(d if d > 0 else (DYNAMIC_BATCH if k == 0 else DYNAMIC_DIM) for k, d in enumerate(i.shape))
        dtype = np.dtype(i.dtype)
        if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > MAX_FEED_BYTES:
            raise UserError(f"input {i.name!r}: test data of shape {list(shape)} would take over "
                            f"{MAX_FEED_BYTES >> 30} GiB; give smaller dims with --input {i.name}[...], or pass --no-verify")
        if dtype.kind == "f":
            value = rng.uniform(0, 255 if raw_pixels else 1, shape)
        elif dtype.kind in "iu":
            value = rng.integers(0, 10, shape)
        elif dtype.kind == "b":
            value = rng.integers(0, 2, shape).astype(bool)
        else:
            raise ValueError(f"cannot make test data for input {i.name!r} of dtype {i.dtype}")
        feeds[i.name] = value.astype(dtype)
    return feeds


def compare(reference: dict, actual: dict, tolerance: float, *, relative: bool = False) -> dict:
    """Max abs and relative difference per output; passed when the chosen one is within tolerance.

    The relative diff is the abs diff over each output's largest magnitude (not elementwise), so tiny
    reference values don't make it explode. float32 targets are held to an abs tolerance (1e-4);
    quantized ones (`relative`) to a relative one, since their error scales with the output: an abs
    1e-1 would pass any model whose outputs are probabilities near 1e-3 (a random-weight ResNet-50's
    are), and fail logits near 100 that are off by a harmless 0.1 %.

    The backends' quantized tolerances are 1e-2 for 16-bit weights (float16, fp16, uint16) and 1e-1
    for 8-bit (int8, uint8, TFLite dynamic). Measured max rel diffs: 16-bit 3e-5..5e-4 on the sample
    models and 8e-5 on ResNet-50; 8-bit 7e-4..1.1e-2 on the samples and 1.6e-3 on ResNet-50. That
    leaves 5-20x headroom for deeper or less regular models, and still fails a broken conversion,
    whose errors are of the size of the output itself.

    Integer and boolean outputs (class ids, counts, masks) must match exactly on every target: a
    class id off by 4 of 1000 is wrong, though only 4e-3 relative.
    """
    per_output, passed = {}, True
    key = "max_rel_diff" if relative else "max_abs_diff"
    for name, ref in reference.items():
        if name not in actual:
            return {"passed": False, "error": f"output {name!r} missing from the converted model's results"}
        exact = not np.issubdtype(np.asarray(ref).dtype, np.floating)
        ref, got = np.asarray(ref, dtype=np.float64), np.asarray(actual[name], dtype=np.float64)
        if ref.shape != got.shape:
            got = got.reshape(ref.shape) if got.size == ref.size else got
            if ref.shape != got.shape:
                return {"passed": False, "error": f"output {name!r}: shape {list(got.shape)}, TensorFlow gives {list(ref.shape)}"}
        abs_diff = float(np.max(np.abs(ref - got))) if ref.size else 0.0
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        out = per_output[name] = {"max_abs_diff": abs_diff, "max_rel_diff": abs_diff / scale if scale else abs_diff}
        passed &= abs_diff == 0 if exact else out[key] <= tolerance
    worst_abs = max((o["max_abs_diff"] for o in per_output.values()), default=0.0)
    worst_rel = max((o["max_rel_diff"] for o in per_output.values()), default=0.0)
    return {"max_abs_diff": worst_abs, "max_rel_diff": worst_rel, "tolerance": tolerance, "tolerance_on": key,
            "passed": passed, "outputs": per_output}
