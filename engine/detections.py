"""TF Object Detection API models: recognising them, their input size, and comparing detections.

The OD API exports (SSD, Faster R-CNN, Mask R-CNN; frozen graphs and TF2 SavedModels) take a uint8
`image_tensor` (`input_tensor` in TF2) and give `detection_boxes` [B,N,4], `detection_scores` and
`detection_classes` [B,N] and `num_detections` [B], computed by NMS inside while loops. Raw tensors
are the wrong thing to compare there: two correct NMS implementations may list detections of equal
score in another order, and the slots past `num_detections` are padding. So a target passes when,
per image, the count agrees, every detection TensorFlow finds has a match (same class, IoU >= 0.5)
and the matched boxes and scores are within the target's tolerance.

Recognition and the pipeline.config reader need no TensorFlow (inspect uses them); numpy is imported
where the comparison runs.
"""

from __future__ import annotations

import re
from pathlib import Path

COUNT, BOXES, SCORES, CLASSES = "num_detections", "detection_boxes", "detection_scores", "detection_classes"
OUTPUT_NAMES = (BOXES, SCORES, CLASSES, COUNT)
IMAGE_INPUTS = ("image_tensor", "input_tensor")
# Per-detection outputs compared exactly (ids, not measurements).
EXACT = {CLASSES, "detection_anchor_indices"}
MIN_IOU = 0.5


def _base(name: str) -> str:
    return name.split(":")[0].rsplit("/", 1)[-1]


def detection_outputs(names) -> list[str]:
    """The OD API outputs among `names` (all detection_* and num_detections), or [] if they are not there."""
    bases = {_base(n) for n in names}
    if not {BOXES, SCORES, COUNT} <= bases:
        return []
    return [n for n in names if _base(n) == COUNT or _base(n).startswith("detection_")]


def looks_like_detector(node_names, ops) -> bool:
    """The OD API pattern: its output nodes, with NMS and a while loop inside (op inventory)."""
    has_nms = any(op.startswith(("NonMaxSuppression", "CombinedNonMaxSuppression")) for op in ops)
    has_loop = any(op in ("While", "StatelessWhile", "LoopCond") for op in ops)
    return bool(detection_outputs(node_names)) and has_nms and has_loop


# --- pipeline.config ---------------------------------------------------------------------------

_RESIZER = re.compile(r"image_resizer\s*\{(.*?)\}\s*\}", re.S)


def pipeline_config(model_path) -> Path | None:
    """The pipeline.config an OD API export keeps beside the model (the SavedModel's parent too)."""
    path = Path(model_path)
    here = path if path.is_dir() else path.parent
    for d in (here, here.parent):
        if (d / "pipeline.config").is_file():
            return d / "pipeline.config"
    return None


def input_size(config_text: str) -> tuple[int, int] | None:
    """(height, width) the image resizer gives: fixed_shape_resizer's, or keep_aspect_ratio_resizer's
    max_dimension square when it pads to it; None when the size depends on the image."""
    m = _RESIZER.search(config_text)
    if not m:
        return None
    body = m.group(1)

    def field(key):
        f = re.search(rf"\b{key}\s*:\s*(\d+)", body)
        return int(f.group(1)) if f else None

    if "fixed_shape_resizer" in body and field("height") and field("width"):
        return field("height"), field("width")
    if "keep_aspect_ratio_resizer" in body and re.search(r"pad_to_max_dimension\s*:\s*true", body) and field("max_dimension"):
        return field("max_dimension"), field("max_dimension")
    return None


def image_shape(model_path, shape) -> tuple[list[int], str] | None:
    """A [-1, H, W, C] shape for the image input from pipeline.config, and a note saying where it came from.

    The batch stays dynamic: tf2onnx's loops over a batch fixed at 1 leave a Loop onnxruntime refuses."""
    config = pipeline_config(model_path)
    if config is None or shape is None or len(shape) != 4:
        return None
    try:
        size = input_size(config.read_text(errors="replace"))
    except OSError:
        return None
    if size is None:
        return None
    channels = shape[3] if shape[3] > 0 else 3
    return [-1, *size, channels], f"shape from {config.name}'s image_resizer ({size[0]}x{size[1]}); change it with --input"


# --- comparison --------------------------------------------------------------------------------


def compare(reference: dict, actual: dict, tolerance, compare_tensors) -> dict:
    """Detections matched per image (see the module's docstring); other outputs by `compare_tensors`.

    Returns compare_tensors' dict shape: per output max abs/rel diff over the matched detections,
    plus `detections`: per image the count and how many matched.
    """
    import numpy as np

    names = detection_outputs(list(reference))
    role = {_base(n): n for n in names}
    rest = {k: v for k, v in reference.items() if k not in names}
    result = compare_tensors(rest, actual, tolerance) if rest else {"passed": True, "outputs": {}}
    if "error" in result:
        return result
    for n in names:
        if n not in actual:
            return {"passed": False, "error": f"output {n!r} missing from the converted model's results"}
    ref = {n: np.asarray(reference[n]) for n in names}
    got = {n: np.asarray(actual[n]).reshape(ref[n].shape) if np.asarray(actual[n]).size == ref[n].size
           else np.asarray(actual[n]) for n in names}
    per_detection = [n for n in names if n != role[COUNT] and ref[n].ndim >= 2 and ref[n].shape[:2] == ref[role[BOXES]].shape[:2]]
    images, problems, matched_ref, matched_got = [], [], {n: [] for n in per_detection}, {n: [] for n in per_detection}
    for b in range(ref[role[COUNT]].shape[0] if ref[role[COUNT]].ndim else 1):
        n_ref, n_got = int(np.ravel(ref[role[COUNT]])[b]), int(np.ravel(got[role[COUNT]])[b])
        images.append({"count": n_ref, "target_count": n_got, "matched": 0})
        if n_ref != n_got:
            problems.append(f"image {b}: {n_got} detections, TensorFlow finds {n_ref}")
            continue
        pairs = _match(ref, got, role, b, n_ref)
        images[-1]["matched"] = len(pairs)
        if len(pairs) < n_ref:
            problems.append(f"image {b}: {n_ref - len(pairs)} of TensorFlow's {n_ref} detections have no match "
                            f"(same class, IoU >= {MIN_IOU}) in the target's")
        for i, j in pairs:
            for n in per_detection:
                matched_ref[n].append(ref[n][b, i])
                matched_got[n].append(got[n][b, j])
    outputs = dict(result.get("outputs", {}))
    passed = result["passed"] and not problems
    for n in per_detection:
        r = np.asarray(matched_ref[n], dtype=np.float64)
        g = np.asarray(matched_got[n], dtype=np.float64)
        diff = np.abs(r - g) if r.size else np.zeros(0)
        scale = float(np.max(np.abs(r), initial=0.0))
        exact = _base(n) in EXACT or not np.issubdtype(ref[n].dtype, np.floating)
        bound = 0.0 if exact else tolerance.atol * (scale if tolerance.scaled else 1.0) + tolerance.rtol * np.abs(r)
        out = ~(diff <= bound)
        worst = float(np.max(diff, initial=0.0))
        outputs[n] = {"shape": list(ref[n].shape), "compared": "matched detections", "detections": int(len(r)),
                      "max_abs_diff": worst, "max_rel_diff": worst / scale if scale else worst,
                      "out_of_bound": float(np.mean(out)) if out.size else 0.0}
        if out.any():
            passed = False
            problems.append(f"{n}: matched detections differ by up to {worst:.2g}")
    counts = ref[role[COUNT]]
    outputs[role[COUNT]] = {"shape": list(counts.shape), "compared": "exactly",
                            "max_abs_diff": float(np.max(np.abs(counts.astype(np.float64) - np.asarray(
                                got[role[COUNT]], np.float64).reshape(counts.shape)), initial=0.0)),
                            "max_rel_diff": 0.0, "out_of_bound": 0.0 if not any("detections, TensorFlow" in p for p in problems) else 1.0}
    worst_abs = max((o["max_abs_diff"] for o in outputs.values()), default=0.0)
    worst_rel = max((o["max_rel_diff"] for o in outputs.values()), default=0.0)
    report = {"max_abs_diff": worst_abs, "max_rel_diff": worst_rel, "atol": tolerance.atol, "rtol": tolerance.rtol,
              "atol_scaled": tolerance.scaled, "tolerance": tolerance.atol,
              "tolerance_on": "max_rel_diff" if tolerance.scaled else "max_abs_diff",
              "passed": bool(passed), "outputs": outputs, "detections": images}
    if problems:
        report["error"] = "detections differ: " + "; ".join(problems[:3])
    elif not any(i["count"] for i in images):
        report["note"] = "TensorFlow finds no detections in the test images: only the counts (0) were compared"
    return report


def _match(ref, got, role, b, n) -> list[tuple[int, int]]:
    """Greedy, in TensorFlow's (score) order: each reference detection takes the unmatched target
    detection of the same class with the highest IoU, if that IoU reaches MIN_IOU."""
    import numpy as np

    classes = role.get(CLASSES)
    free, pairs = set(range(n)), []
    for i in range(n):
        best, best_iou = None, MIN_IOU
        for j in free:
            if classes and ref[classes][b, i] != got[classes][b, j]:
                continue
            iou = _iou(np.asarray(ref[role[BOXES]][b, i], np.float64), np.asarray(got[role[BOXES]][b, j], np.float64))
            if iou >= best_iou:
                best, best_iou = j, iou
        if best is not None:
            free.discard(best)
            pairs.append((i, best))
    return pairs


def _iou(a, b) -> float:
    (ay0, ax0, ay1, ax1), (by0, bx0, by1, bx1) = a, b
    inter = max(0.0, min(ay1, by1) - max(ay0, by0)) * max(0.0, min(ax1, bx1) - max(ax0, bx0))
    union = (ay1 - ay0) * (ax1 - ax0) + (by1 - by0) * (bx1 - bx0) - inter
    return inter / union if union > 0 else (1.0 if (a == b).all() else 0.0)  # degenerate boxes: equal or not
