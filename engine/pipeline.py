"""TensorFlow's part of a conversion: prepare the model once, then per target preflight, convert and
verify into a temporary directory. One target failing (even on a late UserError) does not discard
the others. Runs in engine.worker for the CLI, in-process for tests and library use."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from . import backends
from .errors import UserError
from .report import TargetResult, one_line

Emit = Callable[..., None]  # emit(event, **fields): progress for people or a UI


def convert_targets(detection, info, options, tmp: Path, commands, emit: Emit) -> list[TargetResult]:
    """TensorFlow's part: prepare the model once, then convert and verify each target into tmp/<target>."""
    from .inspect import graph_op_inventory
    from .prepare import import_tensorflow, prepare, run_reference
    from .verify import compare, make_feeds

    emit("stage", stage="import", message="importing TensorFlow")
    work = tmp / ".work"
    work.mkdir()
    tf = import_tensorflow()
    emit("stage", stage="load", message="loading and freezing the model")
    prepared = prepare(detection, info, options, work)
    # Preflight on what will really be converted: the frozen graph (training branches, variables
    # and Keras layers are gone; their TF ops are what the targets see).
    main_ops = Counter(n.op for n in prepared.graph_def.node)
    body_ops = {op: n for op, n in graph_op_inventory(prepared.graph_def).items() if op not in main_ops}
    feeds = make_feeds(prepared.inputs, raw_pixels=prepared.has_preprocessing) if options.verify else {}
    reference = run_reference(tf, prepared, feeds) if options.verify else {}
    results = []
    for target in options.targets:
        backend = backends.get(target)
        result = TargetResult(target, "ok", upstream_command=commands[target])
        results.append(result)
        blocked = backend.preflight(dict(main_ops))
        # Ops only inside control-flow bodies are often pruned when a converter lowers the
        # control flow (cond_v2 leaves gradient plumbing there); let the converter decide.
        maybe = backend.preflight(body_ops)
        if maybe:
            emit("log", target=target, message=f"note: {', '.join(sorted(maybe))} inside control-flow bodies may "
                 "not convert; trying anyway")
        if blocked:
            result.status = "unsupported"
            result.message = "unsupported ops: " + "; ".join(
                f"{op} at {', '.join(_nodes_of(prepared.graph_def, op)[:3]) or 'a function body'} ({why})"
                for op, why in sorted(blocked.items()))
            emit("target", target=target, status="unsupported", message=result.message)
            continue
        target_dir = tmp / target
        target_dir.mkdir()
        emit("stage", stage="convert", target=target, message=f"converting to {backend.title}")
        t0 = time.perf_counter()
        try:
            backend.convert(prepared, options, target_dir, lambda msg, t=target: emit("log", target=t, message=msg))
        except Exception as e:  # this target's failure: report it, go on with the others (and keep theirs)
            result.status, result.message = "failed", str(e) if isinstance(e, UserError) else one_line(e)
            shutil.rmtree(target_dir, ignore_errors=True)
            emit("target", target=target, status="failed", message=result.message)
            continue
        result.seconds = round(time.perf_counter() - t0, 2)
        result.files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(target_dir.rglob("*")) if p.is_file()}
        if options.verify:
            emit("stage", stage="verify", target=target, message="running it and comparing with TensorFlow")
            result.verification = _verify(backend, target_dir, prepared, options, feeds, reference, compare)
            if result.verification.get("passed") is False:
                result.status = "mismatch"
        emit("target", target=target, status=result.status, files=result.files, seconds=result.seconds,
             verification=result.verification, message=result.message)
    shutil.rmtree(work, ignore_errors=True)
    return results


def _nodes_of(graph_def, op: str) -> list[str]:
    return [n.name for n in graph_def.node if n.op == op]


def _verify(backend, target_dir, prepared, options, feeds, reference, compare) -> dict:
    try:
        run = backend.load(target_dir, prepared)
        actual = run(feeds)
    except backends.VerifierUnavailable as e:  # e.g. no Node.js for TF.js: say so, don't fail
        return {"skipped": one_line(e)}
    except Exception as e:
        return {"passed": False, "error": one_line(e)}
    return compare(reference, actual, backend.tolerance(options), relative=options.quantization(backend.name) is not None)
