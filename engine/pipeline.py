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
    from .ladder import climb
    from .prepare import import_tensorflow, prepare, run_reference
    from .tables import string_constants
    from .interface import preprocessed_inputs
    from .user_code import before_tensorflow, load_op_libraries
    from .verify import DYNAMIC_BATCH, compare, index_limits, reference_feeds, reference_run
    from .weights import evict

    emit("stage", stage="import", message="importing TensorFlow")
    work = tmp / ".work"
    work.mkdir()
    before_tensorflow(detection, options)
    tf = import_tensorflow()
    if options.op_libraries:
        emit("stage", stage="op_libraries", message="loading the op libraries")
        load_op_libraries(tf, options, info.custom_ops)
    emit("stage", stage="load", message="loading and freezing the model")
    prepared = prepare(detection, info, options, work)
    if options.tensorboard_logdir:  # staged in tmp; the parent moves them into the logdir (engine.tensorboard)
        from .tensorboard import original_graph, write_graphs

        write_graphs(tf, tmp, original_graph(tf, detection, info), prepared.graph_def)
        emit("log", message="wrote the original and the prepared graph as TensorBoard events")
    # Preflight on what will really be converted: the frozen graph (training branches, variables
    # and Keras layers are gone; their TF ops are what the targets see).
    main_ops, body_ops, custom = frozen_ops(prepared.graph_def)
    feeds, reference, unverifiable = {}, {}, None
    if options.verify:
        # The converted models get the feeds raw; TensorFlow gets them preprocessed apart from the graph.
        preprocessed, (mean, scale) = preprocessed_inputs(prepared.inputs, options), options.mean_scale
        given = None
        if options.sample_inputs:
            from .sample_inputs import load

            emit("stage", stage="load", message="reading the sample inputs")
            given = load(tf, options, prepared.inputs)
        feeds, reference, unverifiable = reference_run(
            prepared.inputs,
            lambda f: run_reference(tf, prepared, reference_feeds(f, preprocessed, mean, scale, options.reverse_input_channels)),
            raw_pixels=prepared.has_preprocessing,
            index_limits=index_limits(prepared.graph_def, [i.name for i in prepared.inputs]),
            vocabulary=string_constants(prepared.graph_def), given=given,
            batch=1 if prepared.weights else DYNAMIC_BATCH)  # a large model: the runtimes' activations small
    bench = _Bench(tf, prepared, feeds, options) if options.benchmark and options.verify and not unverifiable else None
    results = []
    evict(prepared.weights)  # a large model's weights: out of memory until a target reads them (engine.weights)
    for target in options.targets:
        backend = backends.get(target)
        result = TargetResult(target, "ok", upstream_command=commands[target])
        results.append(result)
        blocked, maybe = preflight(backend, main_ops, body_ops, custom)
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
        if result.verification and options.sample_inputs:
            result.verification["sample_inputs"] = [f"{n}={p}" if n else p for n, p in options.sample_inputs]
        if bench and result.verification and "skipped" not in result.verification:
            emit("stage", stage="benchmark", target=target, message=f"timing it in {backend.runtime}")
            result.benchmark = bench.target(backend, target_dir)
        emit("target", target=target, status=result.status, files=result.files, seconds=result.seconds,
             verification=result.verification, message=result.message, strategy=result.strategy)
    if bench:
        emit("stage", stage="benchmark", message="timing TensorFlow")
        for r in results:  # TensorFlow's numbers go with every target's, for the report's table
            if r.benchmark is not None:
                r.benchmark["tensorflow"] = bench.tensorflow()
    shutil.rmtree(work, ignore_errors=True)
    return results


def frozen_ops(graph_def):
    """What preflight judges in the frozen graph: (op → count in the main graph, op → count only
    inside function bodies, the custom ops: --load-op-library's, which no target converts)."""
    from .inspect import graph_op_inventory
    from .safety import custom_ops

    main_ops = Counter(n.op for n in graph_def.node)
    body_ops = {op: n for op, n in graph_op_inventory(graph_def).items() if op not in main_ops}
    return main_ops, body_ops, custom_ops(graph_def)


def preflight(backend, main_ops, body_ops, custom) -> tuple[dict[str, str], dict[str, str]]:
    """(ops that block this target, ops that may not convert): convert and `inspect --deep` ask the same.
    Ops only inside control-flow bodies are often pruned when a converter lowers the control flow
    (cond_v2 leaves gradient plumbing there): those only warn, and the converter decides."""
    return backends.blocking_ops(backend, dict(main_ops), custom), backend.preflight(body_ops)


class _Bench:
    """--benchmark in the worker: the verification's feeds at batch 1, each runtime on the same threads."""

    def __init__(self, tf, prepared, feeds, options):
        from .benchmark import batch_one, threads

        self.tf, self.prepared, self.runs, self.threads = tf, prepared, options.benchmark_runs, threads()
        self.feeds = batch_one(feeds, prepared.inputs)
        self._tensorflow = None

    def target(self, backend, target_dir) -> dict:
        from .benchmark import measure

        n = backend.benchmark_threads or self.threads
        try:
            timing = measure(backend.load(target_dir, self.prepared, threads=n), self.feeds, self.runs)
        except Exception as e:  # a runtime that cannot be timed here is reported, not fatal
            return {"runtime": backend.runtime, "threads": n, "error": one_line(e)}
        return {"runtime": backend.runtime, "threads": n, **timing}

    def tensorflow(self) -> dict:
        from .benchmark import measure, tensorflow_runner

        if self._tensorflow is None:
            run = tensorflow_runner(self.tf, self.prepared, self.threads)
            try:
                self._tensorflow = {"threads": self.threads, **measure(run, self.feeds, self.runs),
                                    "inputs": {k: list(v.shape) for k, v in self.feeds.items()}}
            finally:
                run.close()
        return dict(self._tensorflow)


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
    from .fake_quant import tolerance  # a quantization-aware graph is judged in its output's levels

    return compare(reference, actual, tolerance(backend.tolerance(options), prepared.graph_def, prepared.outputs))
