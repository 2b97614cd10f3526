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
from .report import TargetResult, one_line

Emit = Callable[..., None]  # emit(event, **fields): progress for people or a UI


def convert_targets(detection, info, options, tmp: Path, commands, emit: Emit) -> list[TargetResult]:
    """TensorFlow's part: prepare the model once, then convert and verify each target into tmp/<target>."""
    from .inspect import graph_op_inventory
    from .ladder import climb
    from .prepare import import_tensorflow, prepare, run_reference
    from .tables import string_constants
    from .verify import compare, index_limits, reference_run
    from .weights import evict

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
    feeds, reference, unverifiable = {}, {}, None
    if options.verify:
        feeds, reference, unverifiable = reference_run(
            prepared.inputs, lambda f: run_reference(tf, prepared, f), raw_pixels=prepared.has_preprocessing,
            index_limits=index_limits(prepared.graph_def, [i.name for i in prepared.inputs]),
            vocabulary=string_constants(prepared.graph_def))
    results = []
    evict(prepared.weights)  # a large model's weights: out of memory until a target reads them (engine.weights)
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
        emit("stage", stage="convert", target=target, message=f"converting to {backend.title}")
        t0 = time.perf_counter()
        # When the reference itself can't judge any target (empty, random), no rung can pass: take
        # the first that converts and say why it is unverified.
        def check(outdir, rung_prepared, backend=backend, target=target):
            evict(rung_prepared.weights)  # the converter is done with them: room for the runtime's copy
            emit("stage", stage="verify", target=target, message="running it and comparing with TensorFlow")
            return _verify(backend, outdir, rung_prepared, options, feeds, reference, compare)

        if not options.verify or unverifiable:
            check = None
        # Each rung of the target's ladder converts and verifies in turn (engine.ladder).
        outcome = climb(backend, prepared, options, target_dir, lambda msg, t=target: emit("log", target=t, message=msg),
                        check, one_line)
        result.status, result.message, result.strategy, result.attempts = (
            outcome.status, outcome.message, outcome.strategy, outcome.attempts)
        result.seconds = round(time.perf_counter() - t0, 2)
        if outcome.status == "failed":
            emit("target", target=target, status="failed", message=result.message)
            continue
        result.files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(target_dir.rglob("*")) if p.is_file()}
        result.verification = outcome.verification
        if options.verify and unverifiable:
            result.status, result.verification = "mismatch", {"passed": False, "error": unverifiable}
        emit("target", target=target, status=result.status, files=result.files, seconds=result.seconds,
             verification=result.verification, message=result.message, strategy=result.strategy)
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
    finally:
        run = None
        if prepared.weights:  # a large model: free this runtime's copy before the next target loads its own
            import gc

            gc.collect()
    return compare(reference, actual, backend.tolerance(options))
