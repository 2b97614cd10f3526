"""--benchmark: after verification, each converted model timed in its own runtime against TensorFlow
on the same inputs, at batch 1: WARMUP untimed calls, then the median and p90 of N timed ones.

Every runtime gets the same thread count (the cores this process may use), recorded with the numbers;
TF.js runs on its pure-JavaScript CPU backend, which has one thread, and is timed inside Node (a
process per call would time Node's start-up). Runs in the worker, with TensorFlow loaded.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

WARMUP = 5


def threads() -> int:
    """The cores this process may run on (a container or taskset may give fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def batch_one(feeds: dict, inputs) -> dict:
    """The first sample of each feed whose batch dim is dynamic; fixed-batch inputs keep theirs."""
    dynamic = {i.name for i in inputs if i.shape is None or (i.shape and i.shape[0] <= 0)}
    return {k: v[:1] if k in dynamic and np.ndim(v) else v for k, v in feeds.items()}


def measure(run, feeds: dict, runs: int) -> dict:
    """Time `run(feeds)`: {median_ms, p90_ms, runs, warmup}. A runner that times itself inside its
    runtime (`run.timed(feeds, runs, warmup) -> [ms]`, TF.js) is asked to."""
    timed = getattr(run, "timed", None)
    if timed:
        times = timed(feeds, runs, WARMUP)
    else:
        for _ in range(WARMUP):
            run(feeds)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            run(feeds)
            times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": round(float(np.median(times)), 4), "p90_ms": round(float(np.percentile(times, 90)), 4),
            "runs": len(times), "warmup": WARMUP}


def tensorflow_runner(tf, prepared, n_threads: int):
    """TensorFlow's run of the prepared graph in one open session (run_reference opens one per call)."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(prepared.graph_def, name="")
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=n_threads, inter_op_parallelism_threads=n_threads)
    session = tf.compat.v1.Session(graph=graph, config=config)
    fetches = [f"{o}:0" for o in prepared.outputs]

    def run(feeds):
        return session.run(fetches, {f"{k}:0": v for k, v in feeds.items()})

    run.close = session.close
    return run


def model_bytes(path: str, checkpoint: str | None = None) -> int:
    """The original model's size: the file, or every file under a SavedModel directory, plus the
    checkpoint's files (PREFIX.index, PREFIX.data-*, PREFIX for V1) for a graph with variables."""
    p = Path(path)
    size = p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    if checkpoint:
        prefix = Path(checkpoint)
        size += sum(f.stat().st_size for f in prefix.parent.glob(f"{prefix.name}*")
                    if f.is_file() and (f.name[len(prefix.name):] in ("", ".index") or f.name.startswith(f"{prefix.name}.data-")))
    return size


def block(targets, original_bytes: int) -> dict | None:
    """report.json's `benchmark`: one row per runtime, TensorFlow first, each with the size of what it
    runs. TensorFlow's numbers come from the worker with each target's; they move here, once."""
    tensorflow = None
    for t in targets:
        if t.benchmark:
            tensorflow = t.benchmark.pop("tensorflow", None) or tensorflow
    if tensorflow is None:
        return None
    inputs = tensorflow.pop("inputs", {})
    rows = [{"target": "tensorflow", "runtime": "TensorFlow", "bytes": original_bytes, **tensorflow}]
    rows += [{"target": t.target, "bytes": sum(t.files.values()), **t.benchmark} for t in targets if t.benchmark]
    return {"batch": 1, "inputs": inputs, "rows": rows}


def table(bench: dict) -> list[str]:
    """The benchmark as text lines: runtime, median and p90 latency, speed against TensorFlow, size."""
    from .text import human_size

    rows = bench["rows"]
    base = rows[0].get("median_ms")
    lines = [f"{'runtime':<22} {'median':>9} {'p90':>9} {'vs TF':>6} {'threads':>7} {'size':>10}"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['runtime']:<22} not timed: {r['error']}")
            continue
        speed = f"{base / r['median_ms']:.2g}x" if base and r["median_ms"] else "-"
        lines.append(f"{r['runtime']:<22} {r['median_ms']:>6.2f} ms {r['p90_ms']:>6.2f} ms {speed:>6} {r['threads']:>7} "
                     f"{human_size(r['bytes']):>10}")
    inputs = ", ".join(f"{k}[{','.join(map(str, s))}]" for k, s in bench["inputs"].items())
    lines.append(f"batch 1 ({inputs}); median and p90 of {rows[0]['runs']} runs after {rows[0]['warmup']} warm-up")
    return lines
