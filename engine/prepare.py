"""Normalise any input form, once, into the frozen graph every target converts from.

This is the only module that imports TensorFlow at conversion time (inside functions).
Each input form is frozen to a GraphDef plus a map from user-facing names (placeholder
names, signature keys, Keras layer names) to tensors. Then one rebuild step puts fresh
Placeholders with the final shapes in front, bakes the preprocessing in right after them
(so mean/scale mean the same on every target), imports the model behind them, names the
outputs with Identity nodes and prunes everything else away.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from .backends import Prepared
from .detect import Detection, Format
from .errors import UserError
from .inspect import ModelInfo, TensorInfo
from .options import ConversionOptions


def import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # With oneDNN on (TensorFlow's default on x86), tensors come from a BFC pool that never gives
    # memory back: after the SavedModel's variables are read and freed, ~0.2 GB (ResNet-50) stays
    # resident through every conversion. The only kernels we run are verification's reference run,
    # one small batch, so the plain allocator is fine. (Like every variable here, it only counts if
    # TensorFlow isn't imported yet: always so in the worker process, not in the test process.)
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    # tensorflow_decision_forests (imported by tensorflowjs) crashes printing its banner when
    # stderr is not a real terminal fd; we don't want the banner anyway.
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


def prepare(detection: Detection, info: ModelInfo, options: ConversionOptions, workdir: Path) -> Prepared:
    """Freeze the model and rebuild it with the final inputs, preprocessing and outputs."""
    tf = import_tensorflow()
    inputs = final_inputs(info, options)
    outputs = final_outputs(info, options)
    frozen, tensor_of = _freeze(tf, detection, info, options, [o for o in outputs])
    graph_def = _rebuild(tf, frozen, tensor_of, inputs, outputs, options, info)
    if graph_def.library.function and not options.control_flow_v2:
        graph_def = _lower_control_flow(tf, graph_def, inputs, outputs, info)
    graph_path = workdir / "prepared.pb"
    graph_path.write_bytes(graph_def.SerializeToString())
    return Prepared(
        graph_def=graph_def, graph_path=graph_path, inputs=inputs, outputs=outputs,
        keras_path=detection.path if info.format in ("keras_h5", "keras_v3") else None,
        has_preprocessing=options.has_preprocessing,
    )


# --- what the converted model's interface will be (no TensorFlow needed) --------------------------


def final_inputs(info: ModelInfo, options: ConversionOptions) -> list[TensorInfo]:
    """The model's inputs with --input overrides and --batch applied; boolean switches dropped."""
    by_name = {i.name: i for i in info.inputs}
    for name, _ in options.inputs:
        if name not in by_name:
            raise UserError(f"--input {name!r}: no such input; the model's inputs are {', '.join(by_name) or 'none'}")
    overrides = dict(options.inputs)
    result = []
    for i in info.inputs:
        if i.note and i.name not in overrides and (i.dtype == "bool" or "default" in i.note):
            continue  # is_training-style switches and defaulted placeholders are frozen at their default
        shape = list(overrides[i.name]) if i.name in overrides else (None if i.shape is None else list(i.shape))
        if i.name in overrides and i.shape is not None and len(shape) != len(i.shape):
            raise UserError(f"--input {i.name!r}: rank {len(shape)} but the model's input has rank {len(i.shape)} "
                            f"({i.shape}); give {len(i.shape)} dimensions")
        if options.batch is not None and shape:
            shape[0] = options.batch
        result.append(replace(i, shape=shape))
    return result


def final_outputs(info: ModelInfo, options: ConversionOptions, graph=None) -> list[str]:
    """The outputs to convert. Graphs (pass the parsed GraphDef as `graph`) can be cut at any node."""
    if not options.outputs:
        return [o.name for o in info.outputs]
    if info.format in ("saved_model", "keras_h5", "keras_v3"):
        known = {o.name for o in info.outputs}
        unknown = [o for o in options.outputs if o not in known]
        if unknown:
            raise UserError(f"--output {unknown[0]!r}: no such output; the model's outputs are {', '.join(sorted(known))}")
    elif graph is not None:
        nodes = {n.name for n in graph.node}
        missing = [o for o in options.outputs if o.split(":")[0] not in nodes]
        if missing:
            raise UserError(f"--output {missing[0]!r}: no such node in the graph; the outputs found are "
                            f"{', '.join(o.name for o in info.outputs)}")
    return list(options.outputs)


# --- freezing each input form ---------------------------------------------------------------------


def _freeze(tf, detection: Detection, info: ModelInfo, options, outputs):
    """→ (frozen GraphDef, {user name: tensor name in it})."""
    fmt = detection.format
    if fmt in (Format.GRAPHDEF, Format.GRAPHDEF_TEXT):
        graph_def = _read_graph_def(tf, detection.graph)
        return graph_def, _graph_names(graph_def, info, outputs)
    if fmt in (Format.CHECKPOINT, Format.METAGRAPH):
        return _freeze_tf1(tf, detection, info, outputs), _graph_names(None, info, outputs)
    if fmt is Format.SAVED_MODEL:
        return _freeze_saved_model(tf, detection, info)
    return _freeze_keras(tf, detection, info, trust=options.trust_model)


def _graph_names(graph_def, info, outputs) -> dict[str, str]:
    names = {i.name: f"{i.name}:0" for i in info.inputs}
    if graph_def is not None:
        nodes = {n.name for n in graph_def.node}
        missing = [o for o in outputs if o not in nodes]
        if missing:
            raise UserError(f"--output {missing[0]!r}: no such node in the graph; the outputs found are "
                            f"{', '.join(o.name for o in info.outputs)}")
    names.update({o: f"{o}:0" for o in outputs})
    return names


def _freeze_tf1(tf, detection: Detection, info: ModelInfo, outputs) -> object:
    """Restore the checkpoint into the graph in a session and fold the variables into constants."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        if detection.format is Format.METAGRAPH:
            tf.compat.v1.train.import_meta_graph(str(detection.graph), clear_devices=True)
        else:
            tf.compat.v1.import_graph_def(_read_graph_def(tf, detection.graph), name="")
        missing = [o for o in outputs if not _has_op(graph, o)]
        if missing:
            raise UserError(f"--output {missing[0]!r}: no such node in the graph; the outputs found are "
                            f"{', '.join(o.name for o in info.outputs)}")
        if detection.checkpoint:
            restore = _restore_ops(tf, graph, detection.checkpoint)
            with _damaged_weights(tf, detection.checkpoint, "checkpoint"):
                sess.run(restore)
        return tf.compat.v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), outputs)


# What TensorFlow raises for weights it cannot read: truncated data files come back as IndexError
# ("Read less bytes than requested"), checksum mismatches as DataLossError (an OpError).
def _weight_errors(tf):
    return (tf.errors.OpError, IndexError, ValueError, RuntimeError, OSError)


@contextmanager
def _damaged_weights(tf, where, what: str):
    try:
        yield
    except _weight_errors(tf) as e:
        if isinstance(e, (tf.errors.PermissionDeniedError, PermissionError)):
            raise  # the sandbox stopped the model (engine.sandbox.blocked words it), not damage
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(f"{where}: TensorFlow cannot read the {what} ({msg}); it is probably truncated or corrupt, "
                        "copy it again") from None


def _restore_ops(tf, graph, checkpoint: str) -> list:
    """Assign every variable its checkpoint value (V1 or V2; ref or resource variables).

    A tf.train.Saver would need the graph's saver_def or Variable objects, which a bare
    inference GraphDef doesn't have; the checkpoint reader needs neither.
    """
    try:
        reader = tf.train.load_checkpoint(checkpoint)
    except _weight_errors(tf) as e:
        raise UserError(f"{checkpoint}: cannot read the checkpoint ({str(e).splitlines()[0][:160]}); "
                        "check --checkpoint, or copy it again if it is damaged") from None
    stored = reader.get_variable_to_shape_map()
    assigns = []
    for op in graph.get_operations():
        if op.type not in ("VariableV2", "Variable", "VarHandleOp"):
            continue
        key = op.get_attr("shared_name") if op.type == "VarHandleOp" and op.get_attr("shared_name") else op.name
        key = key.decode() if isinstance(key, bytes) else key
        if key not in stored:
            raise UserError(f"{checkpoint}: no value for variable {key!r}; this checkpoint was not written for "
                            "this graph: pass the right one with --checkpoint")
        with _damaged_weights(tf, checkpoint, "checkpoint"):
            value = tf.constant(reader.get_tensor(key))
        if op.type == "VarHandleOp":
            assigns.append(tf.raw_ops.AssignVariableOp(resource=op.outputs[0], value=value))
        else:
            assigns.append(tf.compat.v1.assign(op.outputs[0], value))
    return assigns


def _read_graph_def(tf, path):
    graph_def = tf.compat.v1.GraphDef()
    data = Path(path).read_bytes()
    try:
        graph_def.ParseFromString(data)
    except Exception:  # detect() already proved it parses one way or the other: text it is
        from google.protobuf import text_format

        graph_def = text_format.Parse(data.decode(), tf.compat.v1.GraphDef())
    return graph_def


def _has_op(graph, name) -> bool:
    try:
        graph.get_operation_by_name(name)
        return True
    except KeyError:
        return False


def _freeze_saved_model(tf, detection: Detection, info: ModelInfo):
    with _damaged_weights(tf, detection.path, "SavedModel"):
        loaded = tf.saved_model.load(str(detection.path), tags=info.tag)
    fn = loaded.signatures[info.signature]
    return _freeze_function(tf, fn, info)


def _freeze_keras(tf, detection: Detection, info: ModelInfo, *, trust: bool = False):
    """Load with Keras' safe mode on unless the user trusts the model (plan() refused it otherwise).

    tf_keras ignores safe_mode for legacy .h5 files and would run a Lambda's bytecode, so its
    safe-mode scope is entered around the load as well.
    """
    if detection.parsed["keras_major"] == "2":
        import tf_keras as keras  # Keras 2 files load faithfully only with Keras 2
        from tf_keras.src.saving.serialization_lib import SafeModeScope
    else:
        import keras
        from keras.src.saving.serialization_lib import SafeModeScope
    try:
        with SafeModeScope(not trust):
            model = keras.models.load_model(str(detection.path), compile=False, safe_mode=not trust)
    except Exception as e:  # Keras raises many types for custom layers, bad configs, ...
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(f"{detection.path}: Keras could not load the model ({msg}); copy it again if it is damaged, "
                        "or export a SavedModel from the training code if it uses custom layers") from None
    specs = [tf.TensorSpec([None if d == -1 else d for d in i.shape] if i.shape is not None else None,
                           i.dtype, name=i.name) for i in info.inputs]

    @tf.function(input_signature=specs)
    def serve(*args):
        result = model(list(args) if len(args) > 1 else args[0], training=False)
        result = result if isinstance(result, (list, tuple)) else [result]
        return {o.name: r for o, r in zip(info.outputs, result)}

    return _freeze_function(tf, serve.get_concrete_function(), info)


def _freeze_function(tf, fn, info: ModelInfo):
    """Freeze a ConcreteFunction; map signature keys / input names to the frozen graph's tensors.

    convert_variables_to_constants_v2 is these two steps (grappler inlining, then variables to
    Consts) plus building a new ConcreteFunction from the result, which we never call: for
    ResNet-50 that last step alone took 2.9 s and 0.8 GB. The GraphDef keeps fn's tensor names.
    """
    from tensorflow.python.framework import convert_to_constants as c2c

    data = c2c._FunctionConverterDataInEager(func=fn, lower_control_flow=True, aggressive_inlining=False)
    graph_def, converted = c2c._replace_variables_by_constants(converter_data=data)
    captured = fn.graph.internal_captures
    frozen_inputs = {id(captured[k]) for k in converted}
    placeholders = [t for t in fn.inputs if id(t) not in frozen_inputs and t.dtype != tf.resource]
    args, kwargs = fn.structured_input_signature
    names = {spec.name: t.name for spec, t in zip(tf.nest.flatten((args, kwargs)), placeholders)}
    # Keyword signatures flatten by sorted key; positional ones keep their order. Match by name when we can.
    for i in info.inputs:
        for t in placeholders:
            if t.op.name == i.name:
                names[i.name] = t.name
    structured = fn.structured_outputs
    keys = sorted(structured) if isinstance(structured, dict) else [o.name for o in info.outputs]
    flat = [t for t in tf.nest.flatten(structured) if t is not None]
    for key, tensor in zip(keys, fn.outputs if len(fn.outputs) == len(flat) else flat):
        names[key] = tensor.name
    return graph_def, names


# --- the rebuild ----------------------------------------------------------------------------------


def _rebuild(tf, frozen, tensor_of: dict[str, str], inputs: list[TensorInfo], outputs: list[str],
             options: ConversionOptions | None, info: ModelInfo):
    mean, scale = options.mean_scale if options else (None, None)
    reverse = bool(options and options.reverse_input_channels)
    targets = _preprocessed_inputs(inputs, mean, scale, reverse) if options and options.has_preprocessing else set()
    kept = {i.name for i in inputs}
    dropped = [i for i in info.inputs if i.name not in kept]
    graph = tf.Graph()
    with graph.as_default():
        input_map = {}
        for i in inputs:
            shape = None if i.shape is None else [None if d == -1 else d for d in i.shape]
            x = tf.compat.v1.placeholder(tf.as_dtype(i.dtype), shape, name=i.name)
            if x.op.name != i.name:
                raise UserError(f"input name {i.name!r} clashes with another name in the model; rename it in the model")
            if i.name in targets:
                x = _preprocess(tf, x, mean, scale, reverse)
            input_map[tensor_of[i.name]] = x
        for i in dropped:  # a boolean switch without default: inference means False
            if i.dtype == "bool" and "default" not in (i.note or "") and i.name in tensor_of:
                input_map[tensor_of[i.name]] = tf.zeros([d if d > 0 else 1 for d in i.shape or []], tf.bool)
        fetched = [tensor_of.get(o, f"{o}:0") for o in outputs]
        try:
            results = tf.compat.v1.import_graph_def(frozen, input_map=input_map, return_elements=fetched, name="model")
        except ValueError as e:
            msg = str(e).strip().splitlines()[0][:240]
            raise UserError(f"the model does not accept these input shapes ({msg}); check --input/--batch") from None
        for name, tensor in zip(outputs, results):
            tf.identity(tensor, name=name)
    graph_def = graph.as_graph_def()
    return tf.compat.v1.graph_util.extract_sub_graph(graph_def, outputs)


def preprocessed_inputs(inputs, options: ConversionOptions) -> set[str]:
    """Names of the inputs the preprocessing applies to (empty without preprocessing); no TensorFlow."""
    if not options.has_preprocessing:
        return set()
    mean, scale = options.mean_scale
    return _preprocessed_inputs(inputs, mean, scale, options.reverse_input_channels)


def _preprocessed_inputs(inputs, mean, scale, reverse) -> set[str]:
    """Float inputs whose channel count (last dim) matches the mean/scale vectors get the preprocessing."""
    widths = {len(v) for v in (mean, scale) if v and len(v) > 1}
    if len(widths) > 1:
        raise UserError("--mean-values and --scale-values have different lengths; give one value per channel for both")
    channels = widths.pop() if widths else (3 if reverse else None)
    chosen = {
        i.name for i in inputs
        if i.dtype and i.dtype.startswith("float") and i.shape
        and (channels is None or i.shape[-1] == channels)
    }
    if not chosen:
        what = f"{channels} channels (last dimension)" if channels else "a float input"
        raise UserError(f"preprocessing needs {what}, but the inputs are "
                        f"{', '.join(f'{i.name}{i.shape}' for i in inputs)}; check --mean-values/--scale-values")
    return chosen


def _preprocess(tf, x, mean, scale, reverse):
    """(x[..., ::-1] if reverse) - mean) / scale: the legacy Model Optimizer's meaning, in-graph."""
    if reverse:
        x = tf.reverse(x, axis=[-1])
    if mean:
        x = x - tf.constant(mean, dtype=x.dtype)
    if scale:
        x = x / tf.constant(scale, dtype=x.dtype)
    return x


def _lower_control_flow(tf, graph_def, inputs, outputs, info):
    """Turn functional If/While into Switch/Merge and drop what inference doesn't need.

    A TF1 graph frozen in a session keeps cond_v2 branch functions, gradient plumbing included
    (Optional* ops), which TF.js and OpenVINO refuse; re-freezing as a TF2 function lowers it.
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    lowered = convert_variables_to_constants_v2(_concrete(tf, graph_def, inputs, outputs), lower_control_flow=True)
    keys = sorted(outputs)  # dict outputs flatten in sorted key order
    tensor_of = {i.name: t.name for i, t in zip(inputs, lowered.inputs)}
    tensor_of.update({k: t.name for k, t in zip(keys, lowered.outputs)})
    return _rebuild(tf, lowered.graph.as_graph_def(), tensor_of, inputs, outputs, None, info)


def _concrete(tf, graph_def, inputs, outputs):
    """A ConcreteFunction computing the prepared graph (args in input order, dict of outputs)."""
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    return wrapped.prune([wrapped.graph.get_tensor_by_name(f"{i.name}:0") for i in inputs],
                         {o: wrapped.graph.get_tensor_by_name(f"{o}:0") for o in outputs})


def run_reference(tf, prepared: Prepared, feeds: dict) -> dict:
    """TensorFlow's own outputs for `feeds`: the numbers every target is checked against."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(prepared.graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        values = sess.run([f"{o}:0" for o in prepared.outputs], {f"{k}:0": v for k, v in feeds.items()})
    return dict(zip(prepared.outputs, values))
