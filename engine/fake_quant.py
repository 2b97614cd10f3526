"""Quantization-aware training graphs: FakeQuantWithMinMaxVars[PerChannel] / FakeQuantWithMinMaxArgs.

TensorFlow's reference already computes on quantized levels, and each target quantizes the same
levels (ONNX QuantizeLinear/DequantizeLinear, OpenVINO FakeQuantize, TFLite int8 kernels), but
rounds ties and accumulates in its own way: an activation on a level boundary lands one level
over, and that carries to the output. So a fake-quantized output is judged in its own levels:
up to STEPS quantization steps off (its range / (2^bits - 1)); an output computed after the last
FakeQuant (a softmax over quantized logits) by the 8-bit rule. Protobuf only, no TensorFlow.
"""

from __future__ import annotations

from .backends import Tolerance, quantized_tolerance

OPS = ("FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel", "FakeQuantWithMinMaxArgs")
STEPS = 2  # levels an output may be off: a tie rounded the other way, carried through a layer or two
PASS_THROUGH = ("Identity", "Reshape", "Squeeze", "ExpandDims")


def is_quantization_aware(graph_def) -> bool:
    return any(n.op in OPS for n in graph_def.node)


def output_step(graph_def, output: str) -> float | None:
    """The quantization step of the FakeQuant that makes `output`, or None if it is not fake-quantized."""
    nodes = {n.name: n for n in graph_def.node}
    node = nodes.get(output.split(":")[0])
    while node is not None and node.op in PASS_THROUGH and node.input:
        node = nodes.get(node.input[0].split(":")[0])
    if node is None or node.op not in OPS:
        return None
    levels = 2 ** (node.attr["num_bits"].i or 8) - 1 - (1 if node.attr["narrow_range"].b else 0)
    if node.op == "FakeQuantWithMinMaxArgs":
        return (node.attr["max"].f - node.attr["min"].f) / levels
    lo, hi = (_const(nodes, node.input[k]) for k in (1, 2))
    if lo is None or hi is None:
        return None
    return float(max(h - l for l, h in zip(lo, hi))) / levels


def _const(nodes, tensor: str) -> list[float] | None:
    import numpy as np

    from .inspect import source

    node = nodes.get(source(nodes, tensor))
    if node is None or node.op != "Const":
        return None
    t = node.attr["value"].tensor
    if t.float_val:
        return list(t.float_val)
    return np.frombuffer(t.tensor_content, np.float32).tolist() or None


def tolerance(base: Tolerance, graph_def, outputs) -> Tolerance:
    """`base` widened for a quantization-aware graph: STEPS of the coarsest output step (or 8 bits)."""
    if not is_quantization_aware(graph_def):
        return base
    steps = [output_step(graph_def, o) for o in outputs]
    if any(s is None for s in steps):
        eight = quantized_tolerance(8)
        return eight if base.scaled or base.atol < eight.atol else base
    return Tolerance(max(base.atol, STEPS * max(steps)), base.rtol, scaled=False) if not base.scaled else base
