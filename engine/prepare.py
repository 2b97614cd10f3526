"""Normalise any input form, once, into the frozen graph every target converts from.

TensorFlow is imported here inside functions (as in the backends that convert with it), never at
module level; what needs no TensorFlow (the final interface) lives in engine.interface.
Each input form is frozen to a GraphDef plus a map from user-facing names (placeholder
names, signature keys, Keras layer names) to tensors. Then one rebuild step puts fresh
Placeholders with the final shapes in front, bakes the preprocessing in right after them
(so mean/scale mean the same on every target), imports the model behind them, names the
outputs with Identity nodes and prunes everything else away.
"""

from __future__ import annotations

import contextlib
import os
import re
from contextlib import contextmanager
from pathlib import Path

from .backends import Prepared
from .detect import Detection, Format
from .errors import UserError
from .inspect import ModelInfo, TensorInfo, source
from .interface import final_inputs, final_outputs, preprocessed_name, preprocessing_inputs
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


def prepare(detection: Detection, info: ModelInfo, options: ConversionOptions, workdir: Path, *,
            control_flow_v2: bool = False) -> Prepared:
    """Freeze the model and rebuild it with the final inputs, preprocessing and outputs.

    By default control flow is lowered to TF1 Switch/Merge/Enter/Exit (what TF.js and OpenVINO
    take best). control_flow_v2=True freezes the original model again with functional While/If
    kept, as tf2onnx and the TFLite converter do themselves: their loop rewriters need it (a
    lowered Keras LSTM leaves TensorList ops tf2onnx can't convert). The first Prepared offers that
    variant through `alternative()`, built only if a target asks (engine.ladder).
    """
    tf = import_tensorflow()
    inputs = final_inputs(info, options)
    outputs = final_outputs(info, options)
    keep_v2 = control_flow_v2 or options.control_flow_v2
    weights = {}  # a large model's weights, left out of the GraphDef (by node name)
    frozen, tensor_of = _freeze(tf, detection, info, options, [o for o in outputs], lower=not keep_v2, weights=weights)
    graph_def = _rebuild(tf, frozen, tensor_of, inputs, outputs, options, info)
    del frozen
    if control_flow_v2 and not graph_def.library.function:
        return None  # no functional control flow: the same graph as the first rung
    # An input none of the outputs needs (after --output, e.g. an iterator's string handle) was
    # pruned with the rest: it is not fed.
    kept = {n.name for n in graph_def.node}
    inputs = [i for i in inputs if i.name in kept]
    if weights:  # from TensorFlow's variables to a mapped file (engine.weights), then the variables are freed
        from . import weights as weight_store

        kept_weights = {f"model/{k}": v for k, v in weights.items() if f"model/{k}" in kept}  # _rebuild's prefix
        weights.clear()
        weights = weight_store.store(kept_weights, workdir / f"weights{'-control-flow-v2' if control_flow_v2 else ''}.bin")
        del kept_weights
        import gc

        gc.collect()
    if graph_def.library.function and not keep_v2 and not weights:
        graph_def = _lower_control_flow(tf, graph_def, inputs, outputs, info)
    graph_path = workdir / ("prepared-control-flow-v2.pb" if control_flow_v2 else "prepared.pb")
    graph_path.write_bytes(graph_def.SerializeToString())
    prepared = Prepared(
        graph_def=graph_def, graph_path=graph_path, inputs=inputs, outputs=outputs,
        keras_path=_keras_file(detection, workdir, options),
        has_preprocessing=options.has_preprocessing,
        strategy=(f"{SOURCE_NAMES.get(info.format, 'graph')}, control flow v2" if control_flow_v2 else "frozen graph")
        + (", weights outside it" if weights else ""),
        weights=weights,
    )
    if not control_flow_v2 and not options.control_flow_v2:
        # A large model's too (a recurrent model with a big embedding): its weights are written again,
        # to their own file, only if a target reaches that rung.
        prepared.alternative = _once(lambda: prepare(detection, info, options, workdir, control_flow_v2=True))
    return prepared


# What the report calls the original model in a strategy's name ("saved model, control flow v2").
SOURCE_NAMES = {"saved_model": "saved model", "tf_hub": "Hub module", "keras_h5": "Keras model",
                "keras_v3": "Keras model", "tfjs_layers": "Keras model"}


def _keras_file(detection: Detection, workdir: Path, options) -> Path | None:
    """The Keras file the layers-model targets load: the input itself, or for a TF.js layers model the
    model as tensorflowjs' loader rebuilt it, saved as a Keras 2 .h5 in the work directory."""
    if detection.format in (Format.KERAS_H5, Format.KERAS_V3):
        return detection.path
    if detection.format is Format.TFJS_LAYERS:
        path = workdir / "tfjs_layers_model.h5"
        if not path.exists():
            _load_keras(detection, options).save(str(path))
        return path
    return None


def _once(make):
    """make() on the first call, its result (None included) after that."""
    cache = []

    def get():
        if not cache:
            cache.append(make())
        return cache[0]
    return get


# --- freezing each input form ---------------------------------------------------------------------


def _freeze(tf, detection: Detection, info: ModelInfo, options, outputs, *, lower: bool = True,
            weights: dict | None = None):
    """→ (frozen GraphDef, {user name: tensor name in it}). lower: TF2 functions' control flow.
    weights: a dict to receive the weights a large model leaves out of the GraphDef (by node name)."""
    fmt = detection.format
    if fmt in (Format.GRAPHDEF, Format.GRAPHDEF_TEXT):
        graph_def = _read_graph_def(tf, detection.graph)
        return graph_def, _graph_names(graph_def, info, outputs)
    if fmt in (Format.CHECKPOINT, Format.METAGRAPH):
        return _freeze_tf1(tf, detection, info, outputs), _graph_names(None, info, outputs)
    if fmt in (Format.SAVED_MODEL, Format.TF_HUB):
        return _freeze_saved_model(tf, detection, info, lower=lower, weights=weights)
    return _freeze_keras(tf, detection, info, options, lower=lower, weights=weights)


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
            from tensorflow.python.framework import meta_graph  # reads binary and text MetaGraphDefs

            meta = meta_graph.read_meta_graph_file(str(detection.graph))
            _drop_shape_hints(meta.graph_def)
            tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
        else:
            graph_def = _read_graph_def(tf, detection.graph)
            _drop_shape_hints(graph_def)
            tf.compat.v1.import_graph_def(graph_def, name="")
        missing = [o for o in outputs if not _has_op(graph, o)]
        if missing:
            raise UserError(f"--output {missing[0]!r}: no such node in the graph; the outputs found are "
                            f"{', '.join(o.name for o in info.outputs)}")
        if detection.checkpoint:
            restore = _restore_ops(tf, graph, detection.checkpoint, _needed_ops(graph, outputs))
            with _damaged_weights(tf, detection.checkpoint, "checkpoint"):
                sess.run(restore)
        return tf.compat.v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), outputs)


def _drop_shape_hints(graph_def) -> None:
    """Remove `_output_shapes` attrs: hints TensorFlow's importer checks and refuses when stale (seen on
    real MetaGraphs' gradient nodes: "an _output_shapes attribute inconsistent with the GraphDef").
    TensorFlow infers the shapes again on import; nothing else reads them."""
    for nodes in [graph_def.node] + [f.node_def for f in graph_def.library.function]:
        for node in nodes:
            if "_output_shapes" in node.attr:
                del node.attr["_output_shapes"]


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


def _needed_ops(graph, outputs) -> set[str]:
    """Names of the ops the outputs depend on (data and control edges)."""
    seen, stack = set(), [graph.get_operation_by_name(o.split(":")[0]) for o in outputs]
    while stack:
        op = stack.pop()
        if op.name not in seen:
            seen.add(op.name)
            stack += [t.op for t in op.inputs] + list(op.control_inputs)
    return seen


def _restore_ops(tf, graph, checkpoint: str, needed: set[str]) -> list:
    """Assign each variable the outputs need its checkpoint value (V1 or V2; ref or resource variables).

    Only those: training graphs hold variables that were never saved (a learning rate, a step).

    A tf.train.Saver would need the graph's saver_def or Variable objects, which a bare
    inference GraphDef doesn't have; the checkpoint reader needs neither.
    """
    import numpy as np

    try:
        # The prefix itself, not load_checkpoint(): that takes "dir/" (the prefix of files named
        # .index/.data-*) for a directory and looks for a `checkpoint` state file in it.
        reader = tf.compat.v1.train.NewCheckpointReader(checkpoint)
    except _weight_errors(tf) as e:
        raise UserError(f"{checkpoint}: cannot read the checkpoint ({str(e).splitlines()[0][:160]}); "
                        "check --checkpoint, or copy it again if it is damaged") from None
    stored = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    assigns, size = [], 0
    for op in graph.get_operations():
        if op.type not in ("VariableV2", "Variable", "VarHandleOp") or op.name not in needed:
            continue
        key = op.get_attr("shared_name") if op.type == "VarHandleOp" and op.get_attr("shared_name") else op.name
        key = key.decode() if isinstance(key, bytes) else key
        if key not in stored:
            raise UserError(f"{checkpoint}: no value for variable {key!r}; this checkpoint was not written for "
                            "this graph: pass the right one with --checkpoint")
        size += int(np.prod(stored[key], dtype=np.int64)) * dtypes[key].size
        if size > PROTOBUF_LIMIT * 0.95:  # frozen in a session, they all go into one GraphDef (room for its nodes)
            raise UserError(f"{checkpoint}: over 2 GB of variables cannot be frozen into one graph (protobuf's "
                            "2 GB limit); export the model as a SavedModel "
                            "(tf.compat.v1.saved_model.simple_save) and convert that: tfwizard keeps a SavedModel's "
                            "weights out of the graph")
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


def _freeze_saved_model(tf, detection: Detection, info: ModelInfo, *, lower: bool = True, weights=None):
    with _damaged_weights(tf, detection.path, "SavedModel"):
        loaded = tf.saved_model.load(str(detection.path), tags=info.tag)
    fn = loaded.signatures[info.signature]
    from . import tables

    if hasattr(loaded, "prune") and tables.has_tables(fn.graph.as_graph_def()):  # prune: a TF1 SavedModel
        # Its main op fills lookup tables: only a session freezes it (engine.tables).
        return tables.freeze_in_session(tf, str(detection.path), info.tag, info.signature)
    return _freeze_function(tf, fn, info, lower=lower, weights=weights)


_LOADED: dict = {}  # (path, trust) -> the Keras model: the freeze and the layers-model targets share one load


def _load_keras(detection: Detection, options, info: ModelInfo | None = None):
    """Load with Keras' safe mode on unless the user trusts the model (plan() refused it otherwise).

    tf_keras ignores safe_mode for legacy .h5 files and would run a Lambda's bytecode, so its
    safe-mode scope is entered around the load as well. A TF.js layers model is rebuilt by
    tensorflowjs' own Keras loader (tf_keras), in the same scope. --custom-objects (trusted: plan()
    checked) are imported here; for a Keras 2 file `keras` means tf_keras while they load.
    """
    from . import user_code

    trust = options.trust_model
    key = (str(detection.path), trust)
    if key in _LOADED:
        return _LOADED[key]
    keras2 = detection.parsed["keras_major"] == "2"
    if keras2:
        import tf_keras as keras  # Keras 2 files load faithfully only with Keras 2
        from tf_keras.src.saving.serialization_lib import SafeModeScope
    else:
        import keras
        from keras.src.saving.serialization_lib import SafeModeScope
    objects = user_code.custom_objects(options, keras2=keras2) if options.custom_objects else {}
    with user_code.keras_as_tf_keras() if keras2 and objects else contextlib.nullcontext():
        try:
            with SafeModeScope(not trust):
                if detection.format is Format.TFJS_LAYERS:
                    from tensorflowjs.converters import keras_tfjs_loader

                    model = keras_tfjs_loader.load_keras_model(str(detection.path))
                else:
                    model = keras.models.load_model(str(detection.path), compile=False, safe_mode=not trust,
                                                    custom_objects=objects or None)
        except Exception as e:  # Keras raises many types for custom layers, bad configs, ...
            raise _keras_load_error(keras, detection, info, options, e) from None
    _LOADED[key] = model
    return model


def _freeze_keras(tf, detection: Detection, info: ModelInfo, options, *, lower: bool = True, weights=None):
    from . import user_code

    model = _load_keras(detection, options, info)
    keras2 = detection.parsed["keras_major"] == "2"
    # The custom layers' code runs again while the call is traced: `keras` stays tf_keras for it.
    with user_code.keras_as_tf_keras() if keras2 and options.custom_objects else contextlib.nullcontext():
        specs = [tf.TensorSpec([None if d == -1 else d for d in i.shape] if i.shape is not None else None,
                               i.dtype, name=i.name) for i in info.inputs]

        @tf.function(input_signature=specs)
        def serve(*args):
            result = model(list(args) if len(args) > 1 else args[0], training=False)
            result = result if isinstance(result, (list, tuple)) else [result]
            return {o.name: r for o, r in zip(info.outputs, result)}

        fn = serve.get_concrete_function()
        _TRACED[str(detection.path)] = fn
        return _freeze_function(tf, fn, info, lower=lower, weights=weights)


_TRACED: dict = {}  # model path -> the Keras model's traced call, before freezing (engine.tensorboard)


def traced_keras_graph(detection: Detection):
    """The GraphDef of the Keras model's call as traced for freezing: variables, not yet constants."""
    return _TRACED[str(detection.path)].graph.as_graph_def()


def _keras_load_error(keras, detection, info, options, e) -> UserError:
    """Why Keras could not load the model, in one line with the fix."""
    from .sandbox import blocked

    if blocked(e):  # a custom layer reading a file outside the model
        return UserError(blocked(e))
    msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    if detection.format is Format.TFJS_LAYERS:
        return UserError(f"{detection.path}: tensorflowjs' Keras loader could not rebuild the layers model ({msg}); "
                         "convert it from the Keras model it was made from, or save it again from TF.js")
    custom = info.custom_classes if info is not None else ()
    if custom and not options.custom_objects:
        return UserError(f"{detection.path}: Keras could not load the model ({msg}): it needs the code of "
                         f"{', '.join(custom)}; pass --custom-objects FILE.py, the file that defines "
                         "them (with --trust-model)")
    if options.custom_objects and custom:
        return UserError(f"{detection.path}: Keras could not load the model with --custom-objects "
                         f"{', '.join(options.custom_objects)} ({msg}); those must define {', '.join(custom)} "
                         "as the model was saved with them")
    written = detection.parsed.get("keras_version") or ""
    if written and written != keras.__version__ and "custom" not in msg.lower():
        # Mostly a file from another Keras release whose config this one rebuilds differently
        # (Keras 3.4+ on nested models saved by 3.0-3.3: keras-team/keras#19959, #20084).
        return UserError(f"{detection.path}: written by Keras {written}; this Keras ({keras.__version__}) cannot "
                         f"rebuild it ({msg}); load it with Keras {written} (pip install keras=={written}) and "
                         "export a SavedModel there with model.export(DIR), then convert DIR")
    return UserError(f"{detection.path}: Keras could not load the model ({msg}); copy it again if it is damaged, "
                     "or export a SavedModel from the training code if it uses custom layers")


def _freeze_function(tf, fn, info: ModelInfo, *, lower: bool = True, weights: dict | None = None):
    """Freeze a ConcreteFunction; map signature keys / input names to the frozen graph's tensors.

    convert_variables_to_constants_v2 is these two steps (grappler inlining, then variables to
    Consts) plus building a new ConcreteFunction from the result, which we never call: for
    ResNet-50 that last step alone took 2.9 s and 0.8 GB. The GraphDef keeps fn's tensor names.
    """
    from tensorflow.python.framework import convert_to_constants as c2c

    large = weights is not None and sum(v.shape.num_elements() * v.dtype.size for v in fn.graph.variables
                if v.shape.is_fully_defined()) > LARGE_MODEL_BYTES
    data = (_WeightsLeftOut if large else c2c._FunctionConverterDataInEager)(
        func=fn, lower_control_flow=lower, aggressive_inlining=False)
    graph_def, converted = c2c._replace_variables_by_constants(converter_data=data)
    _drop_writes_to_frozen_variables(graph_def)
    if large:
        _leave_out(graph_def, data.left_out)
        _loop_shapes_of_left_out(graph_def, {k: v.shape for k, v in data.left_out.items()})
        weights.update(data.left_out)
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


# Ops that write a resource variable; they have no outputs, only control edges lead on from them.
VARIABLE_WRITES = {"AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp"}


def _drop_writes_to_frozen_variables(graph_def) -> None:
    """Remove the writes to variables that freezing turned into constants, and the control edges to them.

    Keras 3 RNN layers with dropout draw their dropout masks on every call, at inference too (the
    masks go unused when training=False), which advances the SeedGenerator's state variable: an
    AssignVariableOp that now writes into a Const, which TensorFlow refuses to import. No output
    depends on such a write: it has no outputs, and every read of the variable is already the frozen
    value. The variables themselves, and how the layers use them, stay as the model has them.
    """
    nodes = {n.name: n for n in graph_def.node}

    def constant(tensor):
        node = nodes.get(source(nodes, tensor))
        return node is not None and node.op == "Const"

    dead = {n.name for n in graph_def.node if n.op in VARIABLE_WRITES and n.input and constant(n.input[0])}
    if not dead:
        return
    kept = [n for n in graph_def.node if n.name not in dead]
    for n in kept:
        inputs = [i for i in n.input if not (i.startswith("^") and i[1:] in dead)]
        if len(inputs) != len(n.input):
            del n.input[:]
            n.input.extend(inputs)
    del graph_def.node[:]
    graph_def.node.extend(kept)


# A frozen GraphDef is one protobuf message, and protobuf stops at 2 GiB; well before that, every
# copy of it costs the model's size again (TensorFlow's import, grappler, each converter's own:
# a 0.1 GB model peaked at 5 GB, tf2onnx alone at 6). Past this many bytes of variables the big
# weights stay out of the GraphDef: each becomes a Placeholder of its shape, and its value an array
# (Prepared.weights) that the targets write into their own weight files (ONNX external data,
# OpenVINO .bin, TF.js shards, TFLite buffers). Below it, the frozen graph keeps what the
# converters fold best (constant weights) and control flow lowering, which this path skips.
LARGE_MODEL_BYTES = 1 << 28  # 256 MiB
PROTOBUF_LIMIT = 2 << 30  # bytes one serialized protobuf message can have
WEIGHT_MIN_BYTES = 1 << 20  # smaller variables stay constants: they cost nothing and help folding


def _weights_left_out_class():
    from tensorflow.python.framework import convert_to_constants as c2c

    class WeightsLeftOut(c2c._FunctionConverterDataInEager):
        """TensorFlow's freezing data, with big variables' values set aside (left_out) and a scalar
        in their place, so the Const nodes it makes stay tiny. The arrays share the variables' memory."""

        def _eval(self, tensor):  # a variable's value without the copy .numpy() makes
            import numpy as np

            return np.asarray(tensor.read_value() if hasattr(tensor, "read_value") else tensor)

        def _build_tensor_data(self):
            import numpy as np

            super()._build_tensor_data()
            self.left_out = {}
            for name, data in list(self._tensor_data.items()):
                if data.numpy.nbytes >= WEIGHT_MIN_BYTES:
                    self.left_out[name] = data.numpy
                    self._tensor_data[name] = data._replace(numpy=np.zeros((), data.numpy.dtype))

    return WeightsLeftOut


def _WeightsLeftOut(**kw):
    return _weights_left_out_class()(**kw)


def _leave_out(graph_def, left_out: dict) -> None:
    """The stand-in Consts of left-out weights → Placeholders of the weights' dtype and shape."""
    from tensorflow.python.framework import tensor_shape

    for node in graph_def.node:
        value = left_out.get(node.name)
        if value is None or node.op != "Const":
            continue
        dtype = node.attr["dtype"].type
        node.op = "Placeholder"
        node.ClearField("attr")
        node.attr["dtype"].type = dtype
        node.attr["shape"].shape.CopyFrom(tensor_shape.TensorShape(value.shape).as_proto())


def _loop_shapes_of_left_out(graph_def, shapes: dict) -> None:
    """Freezing recorded each left-out weight's stand-in scalar shape in the While loops it enters
    (their output_shapes): put the weight's shape back, in the graph and in the loops' bodies, or
    tf2onnx types the loop's weight as a scalar ("Input tensors of wrong rank (0)" in onnxruntime)."""
    from tensorflow.python.framework import tensor_shape

    functions = {f.signature.name: f for f in graph_def.library.function}

    def fix(nodes, known: dict, seen: frozenset) -> None:
        by_name = {n.name: n for n in nodes}
        for node in nodes:
            if node.op not in ("While", "StatelessWhile"):
                continue
            inputs = [i for i in node.input if not i.startswith("^")]
            found = {k: known.get(source(by_name, ref)) for k, ref in enumerate(inputs)}
            found = {k: v for k, v in found.items() if v is not None}
            listed = node.attr["output_shapes"].list.shape
            for k, shape in found.items():
                if k < len(listed):
                    listed[k].CopyFrom(tensor_shape.TensorShape(shape).as_proto())
            body = functions.get(node.attr["body"].func.name)
            if found and body is not None and body.signature.name not in seen:  # the loop carries them
                args = [a.name for a in body.signature.input_arg]
                fix(body.node_def, {args[k]: v for k, v in found.items() if k < len(args)}, seen | {body.signature.name})

    fix(graph_def.node, dict(shapes), frozenset())


# --- the rebuild ----------------------------------------------------------------------------------


def _rebuild(tf, frozen, tensor_of: dict[str, str], inputs: list[TensorInfo], outputs: list[str],
             options: ConversionOptions | None, info: ModelInfo):
    mean, scale = options.mean_scale if options else (None, None)
    reverse = bool(options and options.reverse_input_channels)
    targets = preprocessing_inputs(inputs, mean, scale, reverse) if options and options.has_preprocessing else set()
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
                # Named, so verification can feed TensorFlow the pixels preprocessed apart from the graph
                # (engine.images.preprocess) while the converted model gets them raw.
                x = tf.identity(_preprocess(tf, x, mean, scale, reverse), name=preprocessed_name(i.name))
            input_map[tensor_of[i.name]] = x
        frozen_values = dict(options.freeze) if options else {}
        for i in dropped:
            if i.name in frozen_values and i.name in tensor_of:  # --freeze NAME=VALUE
                input_map[tensor_of[i.name]] = tf.constant(freeze_value(i, frozen_values[i.name]))
            elif i.dtype == "bool" and "default" not in (i.note or "") and i.name in tensor_of:
                # a boolean switch without default: inference means False
                input_map[tensor_of[i.name]] = tf.zeros([d if d > 0 else 1 for d in i.shape or []], tf.bool)
        # Freezing a graph for its outputs prunes the placeholders they don't need: nothing to map there.
        present = {n.name for n in frozen.node}
        for n in frozen.node:  # colocation hints (device placement only) may name pruned nodes
            if "_class" in n.attr:
                del n.attr["_class"]
        input_map = {k: v for k, v in input_map.items() if k.split(":")[0] in present}
        fetched = [tensor_of.get(o, f"{o}:0") for o in outputs]
        try:
            results = tf.compat.v1.import_graph_def(frozen, input_map=input_map, return_elements=fetched, name="model")
        except ValueError as e:
            msg = str(e).strip().splitlines()[0][:240]
            if "shape" in msg.lower() or "dimension" in msg.lower():
                raise UserError(f"the model does not accept these input shapes ({msg}); check --input/--batch") from None
            raise UserError(f"TensorFlow cannot import the model's graph ({msg}); the file may be damaged (copy it "
                            "again) or was edited by hand (re-export it from the training code)") from None
        for name, tensor in zip(outputs, results):
            if tf.identity(tensor, name=name).op.name != name:  # TensorFlow renamed it: the name was taken
                taken = ("has the same name as an input" if name in kept else
                         "is the name tfwizard's prepared graph gives the model's own nodes (model/...)")
                raise UserError(f"output {name!r} {taken}, and converted models (ONNX, TFLite signatures) need "
                                "distinct names; re-export the model with another name for it")
    graph_def = graph.as_graph_def()
    _defaults_to_identity(graph_def)
    return tf.compat.v1.graph_util.extract_sub_graph(graph_def, outputs)


def _defaults_to_identity(graph_def) -> None:
    """A PlaceholderWithDefault left out of the interface computes its default: make it an Identity
    of it, so no converter takes it for an input (tf2onnx would, and fail on non-Const defaults)."""
    for n in graph_def.node:
        if n.op == "PlaceholderWithDefault":
            dtype = n.attr["dtype"].type
            n.op = "Identity"
            del n.attr["dtype"], n.attr["shape"]
            n.attr["T"].type = dtype


def freeze_value(i: TensorInfo, text: str):
    """--freeze NAME=VALUE's value as an array of the input's dtype (and shape, where it is known)."""
    import numpy as np

    from .options import parse_freeze_value

    value = np.asarray(parse_freeze_value(text), dtype=np.dtype(i.dtype or "float32"))
    if i.shape is not None and all(d > 0 for d in i.shape) and value.shape != tuple(i.shape):
        try:
            value = np.broadcast_to(value, i.shape).copy()
        except ValueError:
            raise UserError(f"--freeze {i.name}={text}: the input has shape {i.shape}; give a value of that shape "
                            "or one number") from None
    return value


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

    try:
        lowered = convert_variables_to_constants_v2(_concrete(tf, graph_def, inputs, outputs), lower_control_flow=True)
    except ValueError as e:  # grappler's whole message; its reason went to the C++ log
        if "Failed to import metagraph" not in str(e):
            raise
        raise UserError("TensorFlow's graph optimizer cannot read the model's graph to lower its control flow "
                        "(If/While functions); convert with --control-flow-v2 to keep the control flow as it is") from None
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
        try:
            feed = {f"{k}:0": v for k, v in {**feeds, **prepared.weights}.items()}
            values = sess.run([f"{o}:0" for o in prepared.outputs], feed)
        except tf.errors.OpError as e:
            from .sandbox import blocked

            if blocked(e):  # the graph touched a file outside the model: no input size fixes that
                raise UserError(blocked(e)) from None
            shapes = ", ".join(f"{k}[{','.join(map(str, v.shape))}]" for k, v in feeds.items())
            raise UserError(f"TensorFlow cannot run the model on test inputs {shapes or '(none)'}: {tf_error_reason(e)}; "
                            "give the input sizes it takes with --input NAME[d1,d2,...], pin an input with "
                            "--freeze NAME=VALUE, or skip the check with --no-verify") from None
    return dict(zip(prepared.outputs, values))


def tf_error_reason(e) -> str:
    """TensorFlow's own reason from an error, in one line: 'indices[0] = 12 is not in [0, 5) (node x/GatherV2)'.

    str() of an OpError starts with 'Graph execution error:' and the Python traceback of the node's
    definition; the reason comes after those lines, the node in '[[{{node NAME}}]]'.
    """
    text = getattr(e, "message", None) or str(e)
    node = re.search(r"\{\{node ([^}]+)\}\}", text)
    skip = ("Graph execution error", "Detected at node", "Detected in", "File \"", "[[", "Traceback", "Node:",
            "(most recent", "defined at")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    reasons = [ln for ln in lines if not ln.startswith(skip) and not ln.endswith(":")]
    reason = (reasons[0] if reasons else lines[0] if lines else type(e).__name__)[:240]
    return f"{reason} (node {node.group(1)})" if node and node.group(1) not in reason else reason
