"""A GraphDef TensorFlow would reject or crash on, found from the file alone (no TensorFlow).

TensorFlow reports these late and badly: a cycle as "does not accept these input shapes", short
Const data as "Graph execution error", a function that calls itself by dying with SIGSEGV.
malformed() names the first such problem in one sentence, for plan() to refuse before anything loads.
"""

from __future__ import annotations

import re

from .safety import FUNCTION_CALL_ATTRS

# tensorflow/core/graph/graph_constructor.cc (IsValidNodeName): what an imported node may be named.
NODE_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-/>]*")
LOOP_BACK_EDGE_OPS = {"NextIteration", "RefNextIteration"}  # TF1 while loops close their cycle here

# Bytes per element of the fixed-size dtypes (types.proto enum → size), for Const tensor_content.
ITEM_SIZE = {1: 4, 2: 8, 3: 4, 4: 1, 5: 2, 6: 1, 9: 8, 10: 1, 14: 2, 17: 2, 19: 2, 22: 4, 23: 8, 8: 8, 18: 16}


def malformed(graph) -> str | None:
    """Why `graph` (a GraphDef) cannot be a valid TensorFlow graph, or None."""
    from .text import printable

    rows = [(n.name, n.op, n.input) for n in graph.node]  # one pass over the protobuf: graphs are big
    for name, _, _ in rows:
        if not NODE_NAME.fullmatch(name):
            return f"node name '{printable(name)}' is not one TensorFlow accepts (letters, digits and _.-/> only)"
    for where, nodes in [("the graph", [n for n, (_, op, _) in zip(graph.node, rows) if op == "Const"])] + [(f"function '{f.signature.name}'", f.node_def)
                                                        for f in graph.library.function]:
        for node in nodes:
            if node.op == "Const" and (why := _bad_const(node)):
                return f"Const '{printable(node.name)}' in {printable(where)} {why}"
    if cycle := _input_cycle(rows):
        return "nodes feed themselves in a cycle (" + " → ".join(printable(n) for n in cycle) + ")"
    if loop := _recursive_function(graph):
        return "function " + " → ".join(printable(f) for f in loop) + " calls itself, which TensorFlow cannot run"
    return None


def _bad_const(node) -> str | None:
    if "value" in node.attr and node.attr["value"].WhichOneof("value") is None:
        return None  # a large value that engine.skim did not read: present, so not what this checks
    if "value" not in node.attr or not node.attr["value"].HasField("tensor"):
        return "has no value (no data)"
    tensor = node.attr["value"].tensor
    if "dtype" in node.attr and tensor.dtype != node.attr["dtype"].type:
        return "has a value of another type than its dtype, or of none (no data)"
    dims = [d.size for d in tensor.tensor_shape.dim]
    if any(d < 0 for d in dims) or not tensor.tensor_content:
        return None  # no content: TensorFlow fills from the typed values, or with zeros
    count = 1
    for d in dims:
        count *= d
    size = ITEM_SIZE.get(tensor.dtype)
    if size is None or len(tensor.tensor_content) == count * size:
        return None
    return (f"holds {len(tensor.tensor_content)} bytes of data for a {dims} tensor of {count * size} bytes"
            f" ({'short' if len(tensor.tensor_content) < count * size else 'too long'})")


def _input_cycle(rows) -> list[str] | None:
    """A cycle of inputs (data or control) among (name, op, inputs) rows, as names, or None. Iterative."""
    inputs = {name: () if op in LOOP_BACK_EDGE_OPS else [i.lstrip("^").partition(":")[0] for i in ins]
              for name, op, ins in rows}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in inputs:
        if root in state:
            continue
        path, stack = [root], [iter(inputs[root])]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif nxt in inputs and state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt in inputs and nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(inputs[nxt]))
    return None


def _recursive_function(graph) -> list[str] | None:
    """A chain of library functions that ends where it began, or None."""
    names = {f.signature.name for f in graph.library.function}
    calls = {f.signature.name: sorted({c for n in f.node_def for c in _callees(n) if c in names})
             for f in graph.library.function}

    return _input_cycle([(name, "", callees) for name, callees in calls.items()])


def _callees(node) -> list[str]:
    found = [node.op]
    for key in FUNCTION_CALL_ATTRS:
        if key in node.attr:
            value = node.attr[key]
            found += [value.func.name] if value.HasField("func") else [f.name for f in value.list.func]
    return found
