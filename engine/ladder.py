"""The ladder of strategies per target: try each way of converting until one converts and verifies.

The first rung is the shared frozen graph every target gets (engine.prepare, control flow lowered).
When that fails to convert or to verify, the next rungs go back to the original model the way the
target's own tool would: frozen again with control flow v2 kept (tf2onnx's loop rewriters, TFLite's
While), and target-specific last resorts a backend lists itself (TFLite's TF1 graph converter,
Select TF ops). Each rung converts into a directory of its own; the first that verifies (or, when
verification can't tell, the first that converts) becomes OUTDIR/<target>. report.json records the
rung that produced the file ("strategy") and what the others said ("attempts").
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from .errors import UserError
from .output import disk_full

# One rung (Backend.strategies): its name for the report, the Prepared it converts, and how (backend.convert's signature).
Rung = tuple[str, object, Callable]


@dataclass
class Outcome:
    status: str  # "ok", "failed" or "mismatch" (as TargetResult.status)
    message: str = ""
    strategy: str | None = None
    verification: dict | None = None
    attempts: list[dict] = field(default_factory=list)  # [{strategy, error}] of the rungs that lost


def climb(backend, prepared, options, target_dir: Path, log: Callable[[str], None],
          verify: Callable[[Path, object], dict] | None, one_line: Callable[[BaseException], str]) -> Outcome:
    """Try backend's rungs in order; leave the winner's files in target_dir (which must not exist).

    verify(outdir, prepared) → verification dict, or None for --no-verify.
    """
    work = target_dir.parent / ".work" / f"{target_dir.name}-rungs"
    work.mkdir(parents=True, exist_ok=True)
    attempts, fallback = [], None  # fallback: the first rung that converted but did not verify
    try:
        for n, (name, rung_prepared, convert) in enumerate(_guarded(backend.strategies(prepared), attempts, one_line)):
            if n:
                log(f"trying the next strategy: {name}")
            outdir = work / str(n)
            outdir.mkdir()
            try:
                convert(rung_prepared, options, outdir, log)
            except UserError as e:  # the user's to fix, not another rung's: this target fails with it
                return Outcome("failed", message=str(e), attempts=attempts + [{"strategy": name, "error": str(e)}])
            except Exception as e:  # a converter's own failure: on to the next rung
                if full := disk_full(e, target_dir.parent):  # no rung can help with a full disk
                    raise full from None
                attempts.append({"strategy": name, "error": one_line(e)})
                log(f"{name}: {one_line(e)}")
                continue
            verification = verify(outdir, rung_prepared) if verify else None
            passed = verification is None or "skipped" in verification or verification.get("passed")
            if passed:
                outdir.rename(target_dir)
                return Outcome("ok", strategy=name, verification=verification, attempts=attempts)
            attempts.append({"strategy": name, "error": _verification_error(verification)})
            log(f"{name}: converted, but {_verification_error(verification)}")
            if fallback is None:
                fallback = (outdir, name, verification)
        if fallback is not None:
            outdir, name, verification = fallback
            outdir.rename(target_dir)
            return Outcome("mismatch", strategy=name, verification=verification,
                           attempts=[a for a in attempts if a["strategy"] != name])
        message = attempts[0]["error"] if len(attempts) == 1 else "; ".join(
            f"{a['strategy']}: {a['error']}" for a in attempts)
        return Outcome("failed", message=message, attempts=attempts)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _guarded(items: Iterator[Rung], attempts: list, one_line) -> Iterator[Rung]:
    """The rungs, with a failure to build the next one (re-freezing the model) recorded, not raised."""
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except UserError:
            raise
        except Exception as e:
            attempts.append({"strategy": "next strategy", "error": one_line(e)})
            return
        yield item


def _verification_error(v: dict) -> str:
    if "error" in v:
        return f"verification failed: {v['error']}"
    return f"verification out of tolerance (max abs diff {v.get('max_abs_diff', 0):.1e})"
