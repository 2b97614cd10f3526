"""What the frozen graph holds, for `inspect --deep` (engine.deep): runs in engine.worker, with TensorFlow.

The model is frozen exactly as convert freezes it (engine.prepare); then the pipeline's preflight is
asked about the frozen ops, each target's ladder (engine.ladder) names the rung that would convert it,
TensorFlow infers the outputs' shapes and dtypes, and the constants are counted for the weight bytes
each quantization mode would store.
"""

from __future__ import annotations

import math
from pathlib import Path

def analyse(detection, info, options, workdir: Path, emit) -> dict:
    """Freeze as convert does and describe the result (runs in engine.worker, sandboxed)."""
    from . import backends
    from .inspect import graph_op_inventory
    from .pipeline import frozen_ops, preflight
    from .prepare import import_tensorflow, prepare

    emit("stage", stage="import", message="importing TensorFlow")
    tf = import_tensorflow()
    emit("stage", stage="load", message="loading and freezing the model")
    prepared = prepare(detection, info, options, workdir)
    graph_def = prepared.graph_def
    ops = graph_op_inventory(graph_def)
    main_ops, body_ops, custom = frozen_ops(graph_def)
    targets = {}
    for target in backends.TARGETS:  # the pipeline's preflight, on the same frozen graph
        backend = backends.get(target)
        blocked, maybe = preflight(backend, main_ops, body_ops, custom)
        verdict = "blocked" if blocked else "ok" if backend.preflight_knows_ops else "unknown"
        targets[target] = {
            "verdict": verdict, "blocked": blocked, "maybe": maybe,
            # The ladder's first rung converts unless it fails; a blocked target is not attempted.
            "strategy": None if blocked else next(iter(backend.strategies(prepared)))[0],
        }
    floats, other = _weights(tf, graph_def)
    for array in prepared.weights.values():  # a large model's, left out of the graph (engine.weights)
        if array.dtype == "float32":
            floats += array.size
        else:
            other += array.nbytes
    # Each backend's quantization modes say how many bits a weight keeps (engine.backends.Quantization).
    by_mode = {b.name: {"none": floats * 4 + other, **{m: floats * q.bits // 8 + other for m, q in b.quantizations.items()}}
               for b in backends.all_backends()}
    return {
        "ops": ops, "nodes": len(graph_def.node),
        "inputs": [{"name": i.name, "dtype": i.dtype, "shape": i.shape} for i in prepared.inputs],
        "outputs": _outputs(tf, prepared),
        "targets": targets,
        "weight_bytes": {"float32_weights": floats, "other": other, "by_quantization": by_mode},
    }


def _outputs(tf, prepared) -> list[dict]:
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(prepared.graph_def, name="")
    result = []
    for name in prepared.outputs:
        t = graph.get_tensor_by_name(f"{name}:0")
        result.append({"name": name, "dtype": t.dtype.name,
                       "shape": t.shape.as_list() if t.shape.rank is not None else None})
    for o in result:  # -1 for a dynamic dim, as inspect writes it
        if o["shape"] is not None:
            o["shape"] = [-1 if d is None else d for d in o["shape"]]
    return result


def _weights(tf, graph_def) -> tuple[int, int]:
    """(float32 constants' element count, bytes of every other constant) in the graph and its functions."""
    floats = other = 0
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    for node in nodes:
        if node.op != "Const":
            continue
        tensor = node.attr["value"].tensor
        dtype = tf.dtypes.as_dtype(tensor.dtype)
        if dtype == tf.string:
            continue
        count = math.prod(d.size for d in tensor.tensor_shape.dim)
        if dtype == tf.float32:
            floats += count
        else:
            other += count * dtype.size
    return floats, other
