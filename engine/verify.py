"""Seeded inputs for a model, TensorFlow's reference outputs for them, and the comparison of a
target's outputs with those."""

from __future__ import annotations

import re

import numpy as np

from .backends import Tolerance
from .errors import UserError

MAX_FEED_BYTES = 1 << 30  # per input: a [-1,100000,100000] float input would need 80 GB of test data
SEED = 20261121
DYNAMIC_BATCH, DYNAMIC_DIM, UNKNOWN_RANK_SHAPE = 2, 8, (2, 8)
# When an output comes back empty (a model that crops or strides needs longer inputs), the dynamic
# dims other than the batch grow through these sizes, as long as every input stays under
# MAX_FEED_ELEMENTS (a 16 MB float32 tensor).
GROWN_DIMS = (64, 512, 4096, 16384)
MAX_FEED_ELEMENTS = 1 << 22
# Ops whose input 1 indexes the first dim of input 0 (an embedding table).
GATHER_OPS = {"Gather", "GatherV2", "ResourceGather", "GatherNd", "ResourceGatherNd"}
# Inputs whose random values mean nothing to the model, by name (TF1 graphs name them so):
# dropout switches (a scalar keep_prob fed 1.0 keeps every unit; a dropout rate fed 0.0 drops none)
# and sequence lengths (dynamic_rnn's sequence_length: the whole test sequence).
KEEP_PROB, DROP_RATE = re.compile(r"keep", re.I), re.compile(r"drop", re.I)
LENGTHS = re.compile(r"len(gth)?s?($|_)|seq_?len", re.I)


def make_feeds(inputs, *, raw_pixels: bool = False, seed: int = SEED, dynamic_dim: int = DYNAMIC_DIM,
               batch: int = DYNAMIC_BATCH, index_limits: dict[str, int] | None = None,
               vocabulary=()) -> dict[str, np.ndarray]:
    """Random inputs matching each input's dtype and shape, in ranges the model can take.

    Floats are uniform in [0, 1), or [0, 255] when the model takes raw pixels (preprocessing
    baked in); uint8 images ([B,H,W,1|3|4], a detector's image_tensor) in [0, 255]; integers in
    [0, 10) so they stay valid as indices, or below the table size when they index an embedding (`index_limits`, from index_limits()); booleans False/True; strings
    three-letter lowercase words (bytes objects, as TensorFlow returns them), every other one from
    `vocabulary` when given (the model's string constants: a lookup table's keys).
    Dynamic dims become `batch` (2) for the first and `dynamic_dim` elsewhere. Scalar dropout
    switches get the value that turns dropout off (keep_prob 1.0, a rate 0.0; a scalar even where
    the graph leaves the rank open), integer sequence lengths the test sequences' length.
    """
    rng = np.random.default_rng(seed)
    limits = index_limits or {}
    feeds = {}
    for i in inputs:
        switch = _dropout_switch(i)
        if switch is not None:
            feeds[i.name] = np.asarray(switch, dtype=i.dtype)
            continue
        shape = UNKNOWN_RANK_SHAPE if i.shape is None else _concrete_shape(i.shape, dynamic_dim, batch)
        if i.dtype == "string":  # text: short lowercase words, as bytes (what TensorFlow returns)
            letters = rng.integers(ord("a"), ord("z") + 1, (*shape, 3)).astype(np.uint8)
            words = [w.tobytes() for w in letters.reshape(-1, 3)]
            if vocabulary:  # every other word from the model's own strings (its lookup table keys), to hit them
                words = [rng.choice(vocabulary) if k % 2 == 0 else w for k, w in enumerate(words)]
            feeds[i.name] = np.array(words, dtype=object).reshape(shape)
            continue
        try:
            dtype = np.dtype(i.dtype)
        except TypeError:  # "string": no random data means anything to the model
            dtype = np.dtype(object)
        if int(np.prod(shape, dtype=np.float64)) * max(dtype.itemsize, 1) > MAX_FEED_BYTES:
            raise UserError(f"input {i.name!r}: test data of shape {list(shape)} would take over "
                            f"{MAX_FEED_BYTES >> 30} GiB; give smaller dims with --input {i.name}[...], or pass --no-verify")
        if dtype.kind == "f":
            value = rng.uniform(0, 255 if raw_pixels else 1, shape)
        elif dtype == np.uint8 and len(shape) == 4 and shape[-1] in (1, 3, 4):  # an image: all of [0, 255]
            value = rng.integers(0, 256, shape)
        elif dtype.kind in "iu" and len(shape) <= 1 and LENGTHS.search(_short_name(i.name)):
            value = np.full(shape, dynamic_dim)
        elif dtype.kind in "iu":
            value = rng.integers(0, max(1, min(10, limits.get(i.name, 10))), shape)
        elif dtype.kind == "b":
            value = rng.integers(0, 2, shape).astype(bool)
        else:
            raise UserError(f"verification cannot make test data for input {i.name!r} of dtype {i.dtype}; cut away the "
                            "outputs that need it with --output NAME, or skip the check with --no-verify")
        feeds[i.name] = value.astype(dtype)
    return feeds


def _concrete_shape(shape, dynamic_dim: int, batch: int = DYNAMIC_BATCH) -> tuple[int, ...]:
    return tuple(d if d > 0 else (batch if k == 0 else dynamic_dim) for k, d in enumerate(shape))


def _short_name(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _dropout_switch(i) -> float | None:
    """1.0 for a scalar float keep_prob, 0.0 for a scalar dropout rate; None for any other input."""
    if i.shape not in ([], None) or not (i.dtype or "").startswith("float"):
        return None
    name = _short_name(i.name)
    return 1.0 if KEEP_PROB.search(name) else 0.0 if DROP_RATE.search(name) else None


def index_limits(graph_def, input_names) -> dict[str, int]:
    """Integer inputs that index an embedding table → the table's size (its first dim).

    Follows each input forward through the ops between it and a Gather (Cast, Reshape, a Keras
    clamp, ...) to where it arrives as the indices, and reads the table's first dim from the Const
    (or Identity of one) the gather reads. Protobuf only, no TensorFlow.
    """
    nodes = {n.name: n for n in graph_def.node}
    consumers: dict[str, list[tuple[str, int]]] = {}
    for n in graph_def.node:
        for k, inp in enumerate(n.input):
            if not inp.startswith("^"):
                consumers.setdefault(inp.split(":")[0], []).append((n.name, k))
    limits = {}
    for name in input_names:
        seen, frontier, sizes = {name}, [name], []
        for _ in range(8):  # a few ops deep: past that it is no longer "the index"
            nxt = []
            for src in frontier:
                for dst, k in consumers.get(src, []):
                    node = nodes[dst]
                    if node.op in GATHER_OPS and k == 1:
                        size = _first_dim(nodes, node.input[0])
                        if size:
                            sizes.append(size)
                    elif dst not in seen and node.op not in GATHER_OPS:
                        seen.add(dst)
                        nxt.append(dst)
            frontier = nxt
        if sizes:
            limits[name] = min(sizes)
    return limits


def _first_dim(nodes, tensor: str) -> int | None:
    node = nodes.get(tensor.lstrip("^").split(":")[0])
    while node is not None and node.op in ("Identity", "ReadVariableOp", "Enter") and node.input:
        node = nodes.get(node.input[0].split(":")[0])
    if node is None or node.op != "Const":
        return None
    dims = node.attr["value"].tensor.tensor_shape.dim
    return dims[0].size if dims and dims[0].size > 0 else None


def reference_run(inputs, run, *, raw_pixels: bool = False, index_limits: dict[str, int] | None = None, vocabulary=(),
                  given: dict | None = None, batch: int = DYNAMIC_BATCH):
    """Feeds and TensorFlow's outputs for them: (feeds, reference, problem or None).

    `given`: the user's own inputs (--sample-input, engine.sample_inputs), used as they are; the
    inputs without one get random values at the same batch.

    `run(feeds) -> outputs` runs TensorFlow. An empty output verifies nothing, so the dynamic dims
    grow (GROWN_DIMS) until every output has elements; a reference that differs between two runs on
    the same feeds (dropout driven by random ops) cannot judge a target. Either way `problem` says
    why, in one line naming the flag that fixes it, and every target's verification fails with it.

    When TensorFlow refuses the first feeds, they are tried once more with every dynamic dim the
    same size: a time-major graph (dynamic_rnn's [time, batch, features] with a [batch] of sequence
    lengths) has its batch where the first feeds put a sequence dim. If that fails too, the first
    error is raised.

    `batch`: the size of a dynamic batch dim (a large model's verification feeds 1, to keep the
    runtimes' activations small).
    """

    def feeds_for(dim):  # reads `batch` when called: None after the retry below
        return make_feeds(inputs, raw_pixels=raw_pixels, dynamic_dim=dim, index_limits=index_limits,
                          vocabulary=vocabulary, batch=batch or dim)

    feeds = feeds_for(DYNAMIC_DIM)
    if given:
        from .sample_inputs import with_batch

        feeds = {**with_batch(feeds, len(next(iter(given.values()))), inputs), **given}
    try:
        reference = run(feeds)
    except UserError:
        if given or not _dynamic_in_several_places(inputs):
            raise
        batch = None  # every dynamic dim as large as the others
        uniform = feeds_for(DYNAMIC_DIM)
        try:
            reference, feeds = run(uniform), uniform
        except UserError:
            pass
        if feeds is not uniform:
            raise
    dynamic = [] if given else [i for i in inputs if i.shape is None or any(d <= 0 for d in i.shape[1:])]
    for dim in GROWN_DIMS:
        if not _empty(reference) or not dynamic:
            break
        bigger = feeds_for(dim)
        if any(v.size > MAX_FEED_ELEMENTS for v in bigger.values()):
            break
        try:
            reference, feeds = run(bigger), bigger
        except UserError:  # the model refuses this size: keep what we had
            break
    empty = _empty(reference)
    if empty:
        sizes = ", ".join(f"{k}[{','.join(map(str, v.shape))}]" for k, v in feeds.items())
        return feeds, reference, (
            f"output {empty[0]!r} is empty for the test inputs ({sizes}), so nothing can be compared; give input "
            "sizes the model produces output for with --input NAME[d1,d2,...]")
    again = run(feeds)
    differ = [k for k in reference if not np.array_equal(np.asarray(reference[k]), np.asarray(again[k]), equal_nan=True)]
    if differ:
        return feeds, reference, (
            f"TensorFlow's own output {differ[0]!r} differs between two runs on the same inputs (random ops, such "
            f"as dropout, are active), so no target can be checked; {_freeze_hint(inputs)}")
    return feeds, reference, None


def reference_feeds(feeds: dict, preprocessed: set[str], mean, scale, reverse: bool) -> dict:
    """What TensorFlow is fed to check a converted model that gets `feeds`: the inputs the preprocessing
    applies to go in preprocessed by numpy (engine.images), past the graph's own preprocessing, so
    the check also proves the preprocessing baked into each target."""
    from .images import preprocess
    from .interface import preprocessed_name

    return {preprocessed_name(k) if k in preprocessed else k: preprocess(v, mean, scale, reverse) if k in preprocessed else v
            for k, v in feeds.items()}


def _dynamic_in_several_places(inputs) -> bool:
    """Whether the inputs' dynamic dims sit at more than one axis, so that one size for all changes the feeds."""
    axes = {k for i in inputs if i.shape for k, d in enumerate(i.shape) if d <= 0}
    return len(axes) > 1


def _empty(outputs: dict) -> list[str]:
    return [k for k, v in outputs.items() if np.asarray(v).size == 0]


def _freeze_hint(inputs) -> str:
    """Scalar float inputs are the usual dropout switches (keep_prob, dropout rate): name them."""
    # TF1 code often leaves keep_prob without a shape (unknown rank)
    scalars = [i.name for i in inputs if i.shape in ([], None) and i.dtype and i.dtype.startswith("float")]
    if not scalars:
        return "turn the randomness off in the model, or skip the check with --no-verify"
    hints = " ".join(f"--freeze {n}={'1.0' if 'keep' in n.lower() else '0.0' if 'drop' in n.lower() else 'VALUE'}"
                     for n in scalars)
    return f"bake the dropout input in as a constant with {hints} (1.0 keeps every unit, a rate of 0.0 drops none)"


def top_k_agreement(ref: np.ndarray, got: np.ndarray) -> dict:
    """For a classifier-like output (one score vector per sample: [batch, classes], classes ≥ 2):
    the fraction of samples whose top-1 class is the same, and whose top-5 classes (as a set) are."""
    if ref.ndim != 2 or ref.shape[1] < 2 or not np.isfinite(ref).all() or not np.isfinite(got).all():
        return {}
    k = min(5, ref.shape[1])
    top_ref, top_got = np.argsort(-ref, axis=1, kind="stable"), np.argsort(-got, axis=1, kind="stable")
    top1 = float(np.mean(top_ref[:, 0] == top_got[:, 0]))
    topk = float(np.mean([set(a[:k]) == set(b[:k]) for a, b in zip(top_ref, top_got)]))
    return {"top1_agreement": top1, "top5_agreement": topk, "samples": int(ref.shape[0])}


def compare(reference: dict, actual: dict, tolerance: Tolerance) -> dict:
    """Per output: passed when every element is within atol + rtol·|ref| (numpy.allclose's rule).

    The rule is per element, so an output with large activations is judged relative to them
    (1.3e-4 off at values near 10 is a float32 rounding, not an error), and tiny ones against atol.
    Reported per output: max abs and max rel diff (the abs diff over the output's largest
    magnitude), the fraction of elements out of bound, the worst element's index (the largest
    |diff| over its bound) and the compared shape.

    float32 targets: atol = rtol = 1e-4, OpenVINO's layer tests' values. Quantized targets' error
    scales with the output as a whole, so their atol is a fraction of the output's largest magnitude
    (`scaled`): an unscaled 1e-1 would pass any model whose outputs are probabilities near 1e-3 (a
    random-weight ResNet-50's are), and fail logits near 100 that are off by a harmless 0.1 %.
    The fractions are 1e-2 for 16-bit weights (float16, fp16, uint16) and 1e-1 for 8-bit (int8,
    uint8, TFLite dynamic). Measured max rel diffs: 16-bit 3e-5..5e-4 on the sample models and 8e-5
    on ResNet-50; 8-bit 7e-4..1.1e-2 on the samples and 1.6e-3 on ResNet-50. That leaves 5-20x
    headroom for deeper or less regular models, and still fails a broken conversion, whose errors
    are of the size of the output itself.

    Integer and boolean outputs (class ids, counts, masks) must match exactly on every target: a
    class id off by 4 of 1000 is wrong, though only 4e-3 relative. An empty output never passes.

    Object detection outputs (detection_boxes/scores/classes, num_detections) are compared as
    detections, matched per image (engine.detections), not as tensors.
    """
    from . import detections

    if detections.detection_outputs(list(reference)):
        return detections.compare(reference, actual, tolerance, _compare_tensors)
    return _compare_tensors(reference, actual, tolerance)


def _compare_tensors(reference: dict, actual: dict, tolerance: Tolerance) -> dict:
    per_output, passed = {}, True
    for name, ref in reference.items():
        if name not in actual:
            return {"passed": False, "error": f"output {name!r} missing from the converted model's results"}
        exact = not np.issubdtype(np.asarray(ref).dtype, np.floating)
        ref, got = np.asarray(ref, dtype=np.float64), np.asarray(actual[name], dtype=np.float64)
        if ref.shape != got.shape:
            got = got.reshape(ref.shape) if got.size == ref.size else got
            if ref.shape != got.shape:
                return {"passed": False, "error": f"output {name!r}: shape {list(got.shape)}, TensorFlow gives {list(ref.shape)}"}
        if not ref.size:
            return {"passed": False, "error": f"output {name!r} is empty (shape {list(ref.shape)}), so nothing was "
                                              "compared; give larger input sizes with --input NAME[d1,d2,...]"}
        diff = np.array(np.abs(ref - got))  # an array even for scalar outputs
        diff[(ref == got) | (np.isnan(ref) & np.isnan(got))] = 0  # equal infinities and NaNs agree
        scale = float(np.max(np.abs(ref[np.isfinite(ref)]), initial=0.0))
        bound = np.zeros_like(ref) if exact else (tolerance.atol * (scale if tolerance.scaled else 1.0)
                                                  + tolerance.rtol * np.abs(ref))
        bound = np.where(np.isfinite(ref), bound, 0.0)  # an inf or NaN must be matched exactly
        out_of_bound = ~(diff <= bound)  # NaN diffs are out of bound
        with np.errstate(divide="ignore", invalid="ignore"):
            excess = np.where(out_of_bound, np.nan_to_num(diff, nan=np.inf) - bound, -1.0)
        worst = np.unravel_index(int(np.argmax(excess if out_of_bound.any() else diff)), ref.shape)
        abs_diff = float(np.max(diff))
        per_output[name] = {
            "shape": list(ref.shape), "max_abs_diff": abs_diff, "max_rel_diff": abs_diff / scale if scale else abs_diff,
            "out_of_bound": float(np.mean(out_of_bound)), "worst_index": [int(k) for k in worst],
            **(top_k_agreement(ref, got) if not exact else {}),
        }
        passed &= not out_of_bound.any()
    worst_abs = max((o["max_abs_diff"] for o in per_output.values()), default=0.0)
    worst_rel = max((o["max_rel_diff"] for o in per_output.values()), default=0.0)
    return {"max_abs_diff": worst_abs, "max_rel_diff": worst_rel, "atol": tolerance.atol, "rtol": tolerance.rtol,
            "atol_scaled": tolerance.scaled, "tolerance": tolerance.atol,
            "tolerance_on": "max_rel_diff" if tolerance.scaled else "max_abs_diff",
            "passed": bool(passed), "outputs": per_output}
