"""Refuse early, before TensorFlow loads anything, when the output disk or the memory is clearly too small."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .detect import glob_escape
from .errors import UserError
from .options import human_size


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


def memory_needed(size: int) -> int:
    """The loaded model and its frozen copy, plus TensorFlow itself (~1 GiB measured on import)."""
    return 2 * size + GIB


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
                reserve: int = 0) -> None:
    """Refuse early when the output disk or the memory is clearly too small. Pure: inputs are given."""
    need = disk_needed(size, targets) + reserve
    if free_disk < need:
        raise UserError(f"-o {out}: not enough free disk space: the conversion needs about {human_size(need)}, "
                        f"{human_size(free_disk)} is free there; free some space or choose another output directory")
    if free_memory is not None and memory_needed(size) > free_memory:
        raise UserError(f"the model ({human_size(size)}) needs about {human_size(memory_needed(size))} of memory to convert, "
                        f"{human_size(free_memory)} is available; close other programs or use a machine with more memory")


def check_resources(detection, options: ConversionOptions, out: Path) -> None:
    """check_space() with this machine's numbers. TFWIZARD_DISK_RESERVE (bytes) keeps that much
    free on the output disk besides the estimate (default 0)."""
    try:
        reserve = int(os.environ.get("TFWIZARD_DISK_RESERVE", "0"))
    except ValueError:
        raise UserError("TFWIZARD_DISK_RESERVE must be a number of bytes") from None
    free_disk = shutil.disk_usage(out.resolve().parent).free
    check_space(model_bytes(detection), len(options.targets), free_disk=free_disk,
                free_memory=available_memory(), out=out, reserve=reserve)
