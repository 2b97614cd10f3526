"""A compact text outline of a model: inputs → main blocks → outputs. No TensorFlow.

People recognise a network by its blocks (conv1, Mixed_4b, Logits), not by its node list.
Graphs are grouped by name scope: the nodes that feed the outputs, with the bodies of the
functions they call inlined (TF2 SavedModels keep everything there), weight plumbing left
out, and the scope every node shares (`InceptionV1/`, `functional_1/`) stripped. Keras
models are listed by layer. Long lists are shortened by merging neighbouring blocks with
the same stem (Mixed_4b … Mixed_4f), then by eliding the middle.
"""

from __future__ import annotations

import re
from collections import Counter

from .detect import Detection, Format, detect
from .inspect import ModelInfo, ancestors, inspect
from .safety import FUNCTION_CALL_ATTRS

MAX_BLOCKS = 14
# Ops that carry weights or wiring, not computation; they would drown the blocks' op lists.
PLUMBING_OPS = {"Const", "Identity", "IdentityN", "NoOp", "Placeholder", "PlaceholderWithDefault", "VariableV2",
                "Variable", "VarHandleOp", "ReadVariableOp", "Assign", "AssignVariableOp", "VarIsInitializedOp",
                "PartitionedCall", "StatefulPartitionedCall", "_Arg", "_Retval", "StopGradient", "Snapshot"}
_STEM = re.compile(r"^([A-Za-z]+\d*?)(?:_|$)")


def outline(model: ModelInfo | Detection, detection: Detection | None = None) -> list[str]:
    """Lines for people: one per input, one per main block (with its main ops), one per output.

    Given a ModelInfo, pass the Detection it was inspected from if you have it: saves reading the
    model again."""
    if isinstance(model, Detection):
        detection, info = model, inspect(model)
    else:
        info = model
        detection = detection or detect(info.path, checkpoint=info.checkpoint)
    blocks = _keras_blocks(detection) if info.op_kind == "keras_layer" else _graph_blocks(detection, info)
    rows = _shorten(blocks)
    width = max((len(name) for name, _ in rows), default=0)
    lines = [f"in   {_tensor(t)}" for t in info.inputs]
    lines += [f"  {name:<{width}}  {ops}".rstrip() for name, ops in rows]
    lines += [f"out  {_tensor(t)}" for t in info.outputs]
    return lines


Block = tuple[str, Counter]  # (name, op or layer class → count)


def _shorten(blocks: list[Block]) -> list[tuple[str, str]]:
    if len(blocks) > MAX_BLOCKS:
        blocks = _merge_stems(blocks)
    rows = [(name, _ops_text(ops)) for name, ops in blocks]
    if len(rows) > MAX_BLOCKS:
        head, tail = rows[: MAX_BLOCKS // 2], rows[-(MAX_BLOCKS // 2 - 1):]
        hidden = rows[len(head):len(rows) - len(tail)]
        rows = head + [(f"… {len(hidden)} more blocks", "")] + tail
    return rows


def _merge_stems(blocks: list[Block]) -> list[Block]:
    """Neighbours with the same stem become one: conv2_block1_… conv2_block3_… → conv2 (×n)."""
    merged: list[tuple[str, str, Counter, int]] = []  # (stem, first name, ops, count)
    for name, ops in blocks:
        stem = (_STEM.match(name) or re.match(r"(.*)", name)).group(1)
        if merged and merged[-1][0] == stem:
            s, first, total, n = merged[-1]
            merged[-1] = (s, first, total + ops, n + 1)
        else:
            merged.append((stem, name, Counter(ops), 1))
    return [(first if n == 1 else f"{stem}* ({n})", ops) for stem, first, ops, n in merged]


def _ops_text(ops: Counter, most: int = 4) -> str:
    top = list(ops.items())[:most]  # in order of appearance: reads like the data flow
    text = ", ".join(op if n == 1 else f"{op}×{n}" for op, n in top)
    rest = sum(ops.values()) - sum(n for _, n in top)
    return text + (f" +{rest} more" if rest else "")


def _tensor(t) -> str:
    shape = "" if t.shape is None else " [" + ", ".join(map(str, t.shape)) + "]"
    return f"{t.name}  {t.dtype or '?'}{shape}"


# --- graphs ------------------------------------------------------------------------------------------


def _graph_blocks(detection: Detection, info: ModelInfo) -> list[Block]:
    graph = _graph_of(detection, info)
    functions = {f.signature.name: f for f in graph.library.function}
    nodes = {n.name: n for n in graph.node}
    roots = [(t.tensor or t.name).split(":")[0] for t in info.outputs]
    live = ancestors(roots, nodes, data_only=True)
    ordered = [n for n in graph.node if n.name in live]
    significant = [(name, n.op) for name, n in _inline(ordered, functions, set(), "") if n.op not in PLUMBING_OPS]
    scopes = [name.split("/")[:-1] or [name] for name, _ in significant]
    common = _common_prefix(scopes)
    blocks: dict[str, Counter] = {}
    for (name, op), scope in zip(significant, scopes):
        rest = scope[common:] or [name.split("/")[-1]]
        blocks.setdefault(rest[0], Counter())[op] += 1
    return list(blocks.items())


def _graph_of(detection: Detection, info: ModelInfo):
    if detection.format in (Format.SAVED_MODEL, Format.TF_HUB):
        for meta in detection.parsed.meta_graphs:
            if list(meta.meta_info_def.tags) == list(info.tag or []):
                return meta.graph_def
        return detection.parsed.meta_graphs[0].graph_def
    if detection.format is Format.METAGRAPH:
        return detection.parsed.graph_def
    return detection.parsed


def _inline(nodes, functions, seen: set[str], scope: str):
    """(name, node) in order, each call followed by the body of the function it calls (once per function).

    A called function's body keeps its own names (Keras and tf.function scope them by layer); the
    branches and bodies of control flow (If, While) belong to the node that runs them."""
    for n in nodes:
        yield scope + n.name, n
        for key in FUNCTION_CALL_ATTRS:
            if key not in n.attr:
                continue
            value = n.attr[key]
            for name in [value.func.name] if value.func.name else [f.name for f in value.list.func]:
                if name in functions and name not in seen:
                    seen.add(name)
                    inner = scope if key == "f" else f"{scope}{n.name}/"
                    yield from _inline(functions[name].node_def, functions, seen, inner)


def _common_prefix(scopes: list[list[str]]) -> int:
    """How many leading scope names every node shares (never all of any node's scope)."""
    if not scopes:
        return 0
    depth = min(len(s) for s in scopes) - 1
    k = 0
    while k < depth and all(s[k] == scopes[0][k] for s in scopes):
        k += 1
    return k


# --- Keras -------------------------------------------------------------------------------------------


def _keras_blocks(detection: Detection) -> list[Block]:
    config = detection.parsed["config"]
    blocks = []
    for layer in config.get("config", {}).get("layers", []):
        cls = layer.get("class_name", "?")
        if cls == "InputLayer":
            continue
        cfg = layer.get("config", {})
        name = cfg.get("name") or layer.get("name") or cls
        inner = cfg.get("layers") if isinstance(cfg, dict) else None
        if isinstance(inner, list):  # a nested model: one block listing what it holds
            blocks.append((name, Counter(i.get("class_name", "?") for i in inner if i.get("class_name") != "InputLayer")))
        else:
            blocks.append((name, Counter({cls: 1})))
    return blocks
