"""model.tflite for a large model (Prepared.weights) without the TFLite converter ever holding its weights.

The converter keeps about three copies of every constant (TensorFlow's, MLIR's, the FlatBuffer's):
3.2x the weights at 2.2 GB. So it gets the graph with each left-out weight as one more input, and
writes a model of a few kilobytes. That model is then edited here, and each weight becomes a
constant whose data is streamed from the mapped weights into the file after the FlatBuffer, at
offsets: TFLite's buffer-offset layout, which its converter writes for models over 2 GB and LiteRT
reads. The edits are the ones the converter makes on constants, so the result matches its output:
- a TRANSPOSE or RESHAPE of a weight becomes the weight, laid out that way;
- a BATCH_MATMUL by a 2-D weight becomes FULLY_CONNECTED on the transposed weight;
- with float16, each float32 weight is stored as float16 behind a DEQUANTIZE.
Dynamic-range (int8) quantization needs the converter's hybrid kernels and is not done here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

ALIGNMENT = 64  # of each weight's data in the file
CHUNK = 64 << 20  # bytes of a weight laid out and written at a time


def convert(prepared, quant: str | None, path: Path, signature_function, log, *, supported_ops: list) -> None:
    """Write path (model.tflite) for prepared; quant is None or "float16". Raises the converter's own
    ConverterError when it refuses the graph (the caller's ladder then takes its next rung)."""
    import tensorflow as tf

    from ..weights import evict

    graph_def, zeros = _with_zero_biases(prepared.graph_def, prepared.weights)
    fed = dataclasses.replace(prepared, graph_def=graph_def, weights={**prepared.weights, **zeros})
    keys = {f"tfwizard_weight_{k}": name for k, name in enumerate(fed.weights)}
    func, holder = signature_function(fed, weight_inputs=keys)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([func], holder)
    converter.target_spec.supported_ops = supported_ops
    data = converter.convert()
    model = _edit(data, {key: fed.weights[name] for key, name in keys.items()},
                  {key for key, name in keys.items() if name in zeros}, quant)
    log(f"writing the weights after the FlatBuffer, at offsets{' as float16' if quant else ''}")
    _write(model, path, on_block=lambda: evict(prepared.weights))


def _with_zero_biases(graph_def, weights: dict):
    """graph_def with `+ 0` after each MatMul by a weight, the 0 one more input → (graph_def, {its name: zeros}).

    Measured (TF 2.19): for x @ W with W an input, the converter fuses a following Relu or Relu6 into its
    BATCH_MATMUL, which has no activation, and the activation is lost. After an ADD of an input it fuses it
    into the ADD, correctly; _edit then turns BATCH_MATMUL + ADD of these zeros into FULLY_CONNECTED with
    the ADD's activation, as the converter writes x @ W for a constant W."""
    import numpy as np
    from tensorflow.core.framework import graph_pb2

    from ..inspect import source

    nodes = {n.name: n for n in graph_def.node}
    out, zeros, renamed = graph_pb2.GraphDef(), {}, {}
    out.CopyFrom(graph_def)
    del out.node[:]
    for node in graph_def.node:
        out.node.add().CopyFrom(node)
        is_matmul = node.op in ("MatMul", "BatchMatMulV2") and len(node.input) >= 2
        w = weights.get(source(nodes, node.input[1])) if is_matmul else None  # x @ a weight, through Identity
        if w is None or w.ndim != 2 or node.attr["transpose_a"].b or node.attr["adj_x"].b:
            continue
        width = w.shape[0] if node.attr["transpose_b"].b or node.attr["adj_y"].b else w.shape[1]
        zero = f"{node.name}/tfwizard_zero_bias"
        zeros[zero] = np.zeros(width, w.dtype)
        placeholder = out.node.add(name=zero, op="Placeholder")
        placeholder.attr["dtype"].type = node.attr["T"].type
        add = out.node.add(name=f"{node.name}/tfwizard_plus_zero", op="AddV2", input=[node.name, zero])
        add.attr["T"].type = node.attr["T"].type
        renamed[node.name] = add.name
    sums = set(renamed.values())
    for node in out.node:  # the MatMuls' readers read the sums
        if node.name not in sums:
            node.input[:] = [_rename(ref, renamed) for ref in node.input]
    return out, zeros


def _rename(ref: str, renamed: dict) -> str:
    control, name = ref.startswith("^"), ref.lstrip("^")
    base, _, port = name.partition(":")
    if base not in renamed or port not in ("", "0"):
        return ref
    return ("^" if control else "") + renamed[base]


def _edit(data: bytes, weights: dict, zero_biases: set, quant: str | None):
    """The converter's model (weights as signature inputs, by key) → (ModelT, [(BufferT, array view)])."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as fb

    model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))
    graph, (signature,) = model.subgraphs[0], model.signatureDefs  # the weights enter the main graph only
    ops = fb.BuiltinOperator

    def code(op):
        c = model.operatorCodes[op.opcodeIndex]
        return max(c.builtinCode, c.deprecatedBuiltinCode)

    def opcode(builtin: int, version: int) -> int:
        for k, c in enumerate(model.operatorCodes):
            if max(c.builtinCode, c.deprecatedBuiltinCode) == builtin and c.version == version:
                return k
        c = fb.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = builtin, min(builtin, 127), version
        model.operatorCodes.append(c)
        return len(model.operatorCodes) - 1

    def const_value(t: int):
        b = model.buffers[graph.tensors[t].buffer]
        if b.data is None or not len(b.data):
            return None
        return np.frombuffer(bytes(bytearray(b.data)), np.int32 if graph.tensors[t].type == fb.TensorType.INT32
                             else np.int64)

    def new_tensor(like, shape, name: str, dtype=None) -> int:
        t = fb.TensorT()
        t.shape, t.type, t.name = list(shape), like.type if dtype is None else dtype, name.encode()
        t.buffer = 0  # empty: the buffer it gets (below) or an op's output
        graph.tensors.append(t)
        return len(graph.tensors) - 1

    view = {}  # tensor index → the numpy view (of the mapped weights) that is its value
    weight_entries = [entry for entry in signature.inputs if _key(entry) in weights]
    for entry in weight_entries:
        view[entry.tensorIndex] = weights[_key(entry)]
        signature.inputs.remove(entry)
    graph.inputs = [int(i) for i in graph.inputs if int(i) not in view]

    # The converter's folds of constants, redone on views: TRANSPOSE/RESHAPE of a weight is a weight.
    for op in list(graph.operators):
        inputs = [int(i) for i in op.inputs]
        if not inputs or inputs[0] not in view or code(op) not in (ops.TRANSPOSE, ops.RESHAPE):
            continue
        source, out = view[inputs[0]], int(op.outputs[0])
        if code(op) == ops.TRANSPOSE:
            perm = const_value(inputs[1]) if len(inputs) > 1 else None
            if perm is None:
                continue
            view[out] = source.transpose([int(p) for p in perm])
        else:
            shape = [int(d) for d in graph.tensors[out].shape]
            if min(shape, default=0) < 0 or not source.flags.c_contiguous:  # a reshape would copy
                continue
            view[out] = source.reshape(shape)
        graph.operators.remove(op)

    # x @ W with a 2-D weight W: FULLY_CONNECTED on W transposed, as the converter writes it for constants,
    # with the activation of the ADD of zeros that follows it (see _with_zero_biases).
    zeros = {entry.tensorIndex for entry in weight_entries if _key(entry) in zero_biases}
    for op in list(graph.operators):
        inputs = [int(i) for i in op.inputs]
        if code(op) != ops.BATCH_MATMUL or inputs[1] not in view or view[inputs[1]].ndim != 2:
            continue
        options = op.builtinOptions
        if options is not None and options.adjX:
            continue
        w = view[inputs[1]] if options is not None and options.adjY else view[inputs[1]].T
        weight = new_tensor(graph.tensors[inputs[1]], w.shape, graph.tensors[inputs[1]].name.decode() + "/fc")
        view[weight] = w
        fc = fb.FullyConnectedOptionsT()
        fc.keepNumDims = True
        op.opcodeIndex = opcode(ops.FULLY_CONNECTED, 5)  # version 5: keep_num_dims
        op.inputs, op.builtinOptionsType, op.builtinOptions = [inputs[0], weight, -1], fb.BuiltinOptions.FullyConnectedOptions, fc
        out = int(op.outputs[0])
        readers = [r for r in graph.operators if out in [int(i) for i in r.inputs]]
        if (len(readers) == 1 and code(readers[0]) == ops.ADD and out not in [int(i) for i in graph.outputs]
                and {int(i) for i in readers[0].inputs} - {out} <= zeros):
            add = readers[0]
            fc.fusedActivationFunction = add.builtinOptions.fusedActivationFunction if add.builtinOptions else 0
            op.outputs = [int(i) for i in add.outputs]
            graph.operators.remove(add)

    used = {int(i) for op in graph.operators for i in op.inputs} | {int(i) for i in graph.outputs}
    blocks = []
    for t in sorted(i for i in view if i in used):
        tensor, array = graph.tensors[t], view[t]
        if quant == "float16" and array.dtype == np.float32:  # fp16 data → DEQUANTIZE → the fp32 tensor
            half = new_tensor(tensor, array.shape, tensor.name.decode() + "/float16", fb.TensorType.FLOAT16)
            dequantize = fb.OperatorT()
            dequantize.opcodeIndex, dequantize.inputs, dequantize.outputs = opcode(ops.DEQUANTIZE, 3), [half], [t]
            graph.operators.insert(0, dequantize)
            tensor, array = graph.tensors[half], (array, np.float16)
        else:
            array = (array, array.dtype)
        buffer = fb.BufferT()
        tensor.buffer = len(model.buffers)
        model.buffers.append(buffer)
        blocks.append((buffer, *array))
    _metadata(model, b"buffer_location", b"outside flatbuffers")  # what the converter marks such files with
    return model, blocks


def _key(entry) -> str:
    return entry.name.decode() if isinstance(entry.name, bytes) else entry.name


def _metadata(model, name: bytes, value: bytes) -> None:
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as fb

    buffer, entry = fb.BufferT(), fb.MetadataT()
    buffer.data = np.frombuffer(value, np.uint8)
    entry.name, entry.buffer = name, len(model.buffers)
    model.buffers.append(buffer)
    model.metadata = [*(model.metadata or []), entry]


def _write(edited, path: Path, on_block) -> None:
    """The FlatBuffer, then each block's data at its offset (file offsets: a FlatBuffer's own are 32-bit)."""
    import flatbuffers
    import numpy as np

    model, blocks = edited

    def pack() -> bytes:
        builder = flatbuffers.Builder(1 << 16)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    for buffer, array, dtype in blocks:  # any non-zero offset packs to the same size as the real one
        buffer.offset, buffer.size = 1, int(array.size) * np.dtype(dtype).itemsize
    offset = size = len(pack())
    for buffer, _, _ in blocks:
        offset += -offset % ALIGNMENT
        buffer.offset = offset
        offset += buffer.size
    head = pack()
    assert len(head) == size, "a FlatBuffer's size depends on its offsets' values"
    with open(path, "wb") as f:
        f.write(head)
        for buffer, array, dtype in blocks:
            f.write(b"\0" * (buffer.offset - f.tell()))
            rows = max(1, CHUNK // max(1, array[:1].nbytes)) if array.ndim else 1
            for start in range(0, len(array) if array.ndim else 1, rows):
                part = array[start:start + rows] if array.ndim else array
                f.write(memoryview(np.ascontiguousarray(part, dtype=dtype).reshape(-1)).cast("B"))
            on_block()
