"""`tfwizard inspect --deep`: what the targets will see once TensorFlow has frozen the model.

The static inspect reads files only; a Keras model's ops and a SavedModel's real inference graph
are known only after freezing. This freezes the model exactly as `convert` does (engine.prepare), in
engine.worker's sandboxed process (engine.frozen describes it there), under convert's trust rules: plan() runs the static safety scan
first and refuses code without --trust-model. It reports the frozen op inventory, each target's
preflight verdict on it and the rung of its strategy ladder that would convert it, the outputs'
shapes and dtypes, and the weight bytes per quantization choice.

The answer is cached by the model's content hash under $XDG_CACHE_HOME/tfwizard/deep (default
~/.cache), so asking again is instant.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

SCHEMA = "tfwizard.deep/1"
WHOLE_FILE_BYTES = 64 << 20  # files up to this size are hashed whole for the cache key


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path("~/.cache").expanduser()) / "tfwizard" / "deep"


def deep_options(model: str, *, tag=None, signature=None, checkpoint=None, trust_model: bool = False):
    """The options convert would freeze this model with (no target: nothing is converted)."""
    from .options import ConversionOptions

    return ConversionOptions(model=model, targets=(), output_dir="", tag=tag, signature=signature,
                             checkpoint=checkpoint, trust_model=trust_model)


def cached(options) -> dict | None:
    """The cached answer for these options, without starting TensorFlow (None: not cached, or the model
    can't be read; deep_inspect() then says why)."""
    from .errors import UserError
    from .plan import plan

    try:
        detection, info = plan(options)
    except UserError:
        return None
    return _read(cache_dir() / f"{cache_key(detection, info, options)}.json")


def deep_inspect(options, emit=lambda event, **fields: None) -> dict:
    """Freeze the model in a sandboxed worker and describe the frozen graph; raises UserError as convert would."""
    from .plan import plan
    from .worker import run_deep

    detection, info = plan(options)  # the static safety scan: code needs --trust-model
    path = cache_dir() / f"{cache_key(detection, info, options)}.json"
    if (known := _read(path)) is not None:
        return {**known, "cached": True}
    from .resources import check_analysis_space

    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_work(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=".work-", dir=path.parent))  # on the cache's disk, not a RAM-backed /tmp
    try:
        check_analysis_space(detection, tmp)
        found = run_deep(detection, info, options, tmp, emit)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"schema": SCHEMA, "model": info.path, "format": info.format, **found}
    _write(path, result)
    return {**result, "cached": False}


STALE_WORK_SECONDS = 6 * 3600  # an analysis takes minutes: an older work directory's owner was killed


def _remove_stale_work(cache: Path) -> None:
    """Work directories (.work-*) that a killed analysis left in the cache; a large model's hold its weights."""
    import time

    for work in cache.glob(".work-*"):
        try:
            if work.is_dir() and not work.is_symlink() and time.time() - work.stat().st_mtime > STALE_WORK_SECONDS:
                shutil.rmtree(work, ignore_errors=True)
        except OSError:
            continue


def cache_key(detection, info, options) -> str:
    """sha256 of the model's bytes (every file of a SavedModel, the checkpoint's files; of a file over
    WHOLE_FILE_BYTES, its first and last MiB, size, mtime and inode) and of what changes the frozen
    graph: tag, signature, trust, the tfwizard and TensorFlow versions."""
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256()
    versions = []
    for package in ("tfwizard", "tensorflow"):
        try:
            versions.append(version(package))
        except PackageNotFoundError:
            versions.append("")
    h.update(json.dumps([SCHEMA, versions, info.tag, info.signature, options.trust_model]).encode())
    # (file, the part of its name that matters): a model's own name does not, a SavedModel's layout does.
    root = detection.path
    files = [(root, "")] if root.is_file() else [(p, str(p.relative_to(root))) for p in sorted(root.rglob("*")) if p.is_file()]
    if detection.graph and detection.graph not in [f for f, _ in files]:
        files.append((detection.graph, "graph"))
    if detection.checkpoint:
        prefix = Path(detection.checkpoint)
        files += [(p, p.name[len(prefix.name):]) for p in sorted(prefix.parent.glob(prefix.name + "*")) if p.is_file()]
    for p, name in files:
        stat = p.stat()
        h.update(f"\0{name}\0{stat.st_size}\0".encode())
        with open(p, "rb") as f:
            if stat.st_size <= WHOLE_FILE_BYTES:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            else:  # a big weights file: its ends and its change time, not gigabytes read on every visit
                h.update(f"{stat.st_mtime_ns}\0{stat.st_ino}\0".encode() + f.read(1 << 20))
                f.seek(-(1 << 20), os.SEEK_END)
                h.update(f.read())
    return h.hexdigest()


def _read(path: Path) -> dict | None:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("schema") == SCHEMA else None


def _write(path: Path, result: dict) -> None:
    """Atomically (a reader never sees half a file); a cache that can't be written is no error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError:
        pass


# --- for people ---------------------------------------------------------------------------------


def format_deep(result: dict, available: dict[str, str]) -> str:
    """inspect --deep's text report; `available`: target → why it is not installed (engine.availability)."""
    from .backends import TARGETS
    from .text import human_size

    lines = [f"model      {result['model']}", f"frozen     {result['nodes']} nodes, {len(result['ops'])} op types"
             + (" (cached)" if result.get("cached") else "")]
    for o in result["outputs"]:
        lines.append(f"output     {o['name']}: {o['dtype']} {o['shape'] if o['shape'] is not None else '[?]'}")
    for target in TARGETS:
        lines.append(f"{target:<10} {verdict_line(result['targets'][target], available.get(target))}")
    weights = result["weight_bytes"]
    lines.append("weights    " + ", ".join(f"{label} {human_size(weights['float32_weights'] * bits // 8 + weights['other'])}"
                                          for label, bits in (("float32", 32), ("16-bit", 16), ("8-bit", 8))))
    lines.append("ops        " + ", ".join(f"{op}×{n}" for op, n in result["ops"].items()))
    return "\n".join(lines)


def verdict_line(target: dict, missing: str | None = None) -> str:
    """One target's verdict on the frozen graph, in a line (the wizard shows the same)."""
    if missing:
        return missing
    if target["verdict"] == "blocked":
        return "blocked by " + "; ".join(f"{op} ({why})" for op, why in sorted(target["blocked"].items()))
    line = ("every frozen op supported" if target["verdict"] == "ok"
            else "its converter decides (no op list)") + f" · strategy: {target['strategy']}"
    if target["maybe"]:
        line += f"; {', '.join(sorted(target['maybe']))} only inside control-flow bodies (may be pruned)"
    return line
