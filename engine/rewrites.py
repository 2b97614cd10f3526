"""Graph rewrites a target's converter needs, each exact: the same function in ops it has.

Erfc(x) = 1 - Erf(x). Keras 3's gelu (approximate=False, its default) computes
0.5 * x * erfc(-x / sqrt 2). tf2onnx has no Erfc handler: it writes the TF op into the ONNX model,
which onnxruntime refuses ("Erfc is not a registered function/op"); tensorflowjs refuses the graph.
Both have Erf. Where erfc(x) is tiny (x > 3), 1 - erf(x) loses its relative precision, but not
its absolute one (~6e-8), and gelu multiplies it by 0.5 * x.
"""

from __future__ import annotations

REWRITTEN = {"Erfc"}  # ops a rewrite here removes: the preflights of the targets that use it pass them


def erfc_as_erf(graph_def):
    """A copy of graph_def with every Erfc (in the graph and its functions) as Sub(1, Erf(x)); graph_def
    itself when it has none."""
    functions = graph_def.library.function
    if not any(n.op == "Erfc" for n in [*graph_def.node, *(n for f in functions for n in f.node_def)]):
        return graph_def
    from tensorflow.core.framework import graph_pb2

    out = graph_pb2.GraphDef()
    out.CopyFrom(graph_def)
    _rewrite(out.node, in_function=False)
    for function in out.library.function:
        renamed = _rewrite(function.node_def, in_function=True)
        # Inside a function an op's output is named by its output arg: Erfc's "y", Sub's "z".
        for node in function.node_def:
            node.input[:] = [_renamed(ref, renamed) for ref in node.input]
        for key, ref in list(function.ret.items()):
            function.ret[key] = _renamed(ref, renamed)
    return out


def _rewrite(nodes, *, in_function: bool) -> set[str]:
    """Erfc nodes → Sub(Const 1, Erf(x)), in place; → their names."""
    import numpy as np
    from tensorflow.python.framework import tensor_util

    names = set()
    for node in [n for n in nodes if n.op == "Erfc"]:
        dtype = node.attr["T"].type
        one = nodes.add(name=f"{node.name}/one", op="Const")
        one.attr["dtype"].type = dtype
        one.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(
            np.array(1, _numpy_dtype(dtype))))
        erf = nodes.add(name=f"{node.name}/erf", op="Erf", input=[node.input[0]])
        erf.attr["T"].type = dtype
        control = [i for i in node.input[1:] if i.startswith("^")]
        node.op = "Sub"
        del node.input[:]
        node.input.extend([f"{one.name}:output:0", f"{erf.name}:y:0"] if in_function else [one.name, erf.name])
        node.input.extend(control)
        names.add(node.name)
    return names


def _renamed(ref: str, renamed: set[str]) -> str:
    base, _, rest = ref.partition(":")
    if base in renamed and rest.startswith("y:"):
        return f"{base}:z:{rest[2:]}"
    return ref


def _numpy_dtype(dtype: int):
    from tensorflow.python.framework import dtypes

    return dtypes.as_dtype(dtype).as_numpy_dtype
