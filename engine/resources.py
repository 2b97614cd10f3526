"""Refuse early, before TensorFlow loads anything, when the output disk or the memory is clearly too small."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .detect import glob_escape
from .errors import UserError
from .text import human_size


GIB = 1 << 30
MIB = 1 << 20
DISK_MARGIN = 64 * MIB  # beyond the estimate: report, logs, filesystem slack


def model_bytes(detection) -> int:
    """Bytes of every file that makes up the model: the file or directory, plus its checkpoint."""
    paths = [Path(detection.path)]
    if detection.checkpoint:
        prefix = Path(detection.checkpoint)
        paths += list(prefix.parent.glob(glob_escape(prefix.name) + ".*")) + [prefix]
    total = 0
    for p in paths:
        try:
            files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else []
            total += sum(f.stat().st_size for f in files)
        except OSError:
            continue  # unreadable parts were already reported by detect; the estimate is a floor
    return total


def disk_needed(size: int, targets: int) -> int:
    """Estimate for OUTDIR's filesystem: the frozen work copy plus each target about the model's size,
    with half again as margin (float16 ONNX keeps its float32 copy until the end, TF.js shards)."""
    return int(size * (targets + 1) * 1.5) + DISK_MARGIN


# Graph nodes cost memory beyond their bytes on disk (TensorFlow's Graph, grappler, the converters'
# copies): a 1,000,000-node, 34 MB graph had reached 6 GiB (6 KiB a node) when it was killed.
NODE_BYTES = 16 << 10


def memory_needed(size: int, nodes: int = 0, *, tflite: bool = False) -> int:
    """The loaded model and one more copy (the frozen graph; for a model over 2 GB, whose weights stay
    out of the graph, a runtime loading its output to verify it), its nodes, plus TensorFlow itself
    (~1 GiB measured on import). The TFLite converter holds ~3 copies of the weights (measured at
    0.5 and 2.2 GB), so three when it gets them (`tflite`: see check_resources)."""
    return (3 if tflite else 2) * size + nodes * NODE_BYTES + GIB


def node_count(detection) -> int:
    """Nodes in the model's graphs and their function libraries (0 for Keras: layers are few)."""
    parsed = detection.parsed
    graphs = ([g.graph_def for g in parsed.meta_graphs] if hasattr(parsed, "meta_graphs")
              else [parsed.graph_def] if hasattr(parsed, "graph_def") else [parsed] if hasattr(parsed, "node") else [])
    return sum(len(g.node) + sum(len(f.node_def) for f in g.library.function) for g in graphs)


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else free physical pages; None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_space(size: int, targets: int, *, free_disk: int, free_memory: int | None, out: Path,
                reserve: int = 0, nodes: int = 0, tflite: bool = False) -> None:
    """Refuse early when the output disk or the memory is clearly too small. Pure: inputs are given."""
    need = disk_needed(size, targets) + reserve
    if free_disk < need:
        raise UserError(f"-o {out}: not enough free disk space: the conversion needs about {human_size(need)}, "
                        f"{human_size(free_disk)} is free there; free some space or choose another output directory")
    check_memory(size, nodes, free_memory, tflite=tflite)


def check_memory(size: int, nodes: int, free_memory: int | None, *, tflite: bool = False, doing: str = "convert") -> None:
    need = memory_needed(size, nodes, tflite=tflite)
    if free_memory is not None and need > free_memory:
        what = f"{human_size(size)}, {nodes:,} nodes" if nodes else human_size(size)
        raise UserError(f"the model ({what}) needs about {human_size(need)} of memory to {doing}, "
                        f"{human_size(free_memory)} is available; close other programs or use a machine with more memory")


def check_analysis_space(detection, work: Path) -> None:
    """inspect --deep freezes the model as convert does: the same memory, and the frozen copy (a large
    model's weights file) in `work`, under the cache directory."""
    size = model_bytes(detection)
    need = disk_needed(size, 0)
    free = shutil.disk_usage(work).free
    if free < need:
        raise UserError(f"{work}: not enough free disk space to analyse the model: about {human_size(need)} is needed, "
                        f"{human_size(free)} is free; free some space or set XDG_CACHE_HOME to a directory on another disk")
    check_memory(size, node_count(detection), available_memory(), doing="analyse")


def check_resources(detection, options: ConversionOptions, out: Path) -> None:
    """check_space() with this machine's numbers. TFWIZARD_DISK_RESERVE (bytes) keeps that much
    free on the output disk besides the estimate (default 0)."""
    try:
        reserve = int(os.environ.get("TFWIZARD_DISK_RESERVE", "0"))
    except ValueError:
        reserve = -1
    if reserve < 0:
        raise UserError(f"TFWIZARD_DISK_RESERVE={os.environ['TFWIZARD_DISK_RESERVE']!r}: must be a whole number "
                        "of bytes, 0 or more; fix or unset it")
    free_disk = shutil.disk_usage(out.resolve().parent).free
    check_space(model_bytes(detection), len(options.targets), free_disk=free_disk,
                free_memory=available_memory(), out=out, reserve=reserve, nodes=node_count(detection),
                tflite=_tflite_converter_holds_weights(detection, options))


def _tflite_converter_holds_weights(detection, options: ConversionOptions) -> bool:
    """A large model's weights skip the TFLite converter (engine.backends.tflite_weights), except with
    dynamic-range quantization, which needs its hybrid kernels; a smaller model's pass through it."""
    from .prepare import LARGE_MODEL_BYTES

    return "tflite" in options.targets and (options.quantization("tflite") == "dynamic"
                                            or model_bytes(detection) < LARGE_MODEL_BYTES)
