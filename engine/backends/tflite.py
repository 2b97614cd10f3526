"""TFLite target: tf.lite.TFLiteConverter (TensorFlow's) → OUTDIR/tflite/model.tflite, run in LiteRT.

We convert from `prepared.graph_def` through a tf.function of our own whose input_signature
names every input after prepared's inputs and which returns a dict keyed by prepared's
outputs. Handed to from_concrete_functions together with a trackable object, TFLite writes a
SignatureDef "serving_default" whose input and output keys are exactly prepared's names, so
loading needs no renaming (the tensors inside are "serving_default_x:0" / "PartitionedCall:0").

TF ops that are not TFLite builtins: every rung of the ladder (strategies()) converts with
builtins only; the last rung converts with SELECT_TF_OPS, and the report names it ("select TF
ops"): the model then needs the Flex delegate. Verification runs the model in LiteRT
(`ai-edge-litert`, the tflite extra; tf.lite.Interpreter is deprecated) in the process that has
TensorFlow loaded, where LiteRT picks up TensorFlow's Flex delegate; a LiteRT without TensorFlow
and mobile builds need the select-ops library. Ops that are neither builtins nor Flex fail the
conversion (ConversionFailed).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..text import human_size
from . import Backend, ConversionFailed, Quantization

SIGNATURE = "serving_default"
TF1_LOOP_OPS = {"Enter", "Exit", "NextIteration", "LoopCond"}
FLEX, CUSTOM = "ERROR_NEEDS_FLEX_OPS", "ERROR_NEEDS_CUSTOM_OPS"  # converter_error_data error codes



class TFLiteBackend(Backend):
    name = "tflite"
    title = "TFLite"
    note = "Android, iOS and microcontrollers"
    runtime = "LiteRT interpreter"  # what --benchmark times (engine.benchmark)
    main_file = "model.tflite"
    modules = ("ai_edge_litert",)  # verification; the converter is TensorFlow's own tf.lite
    # float32: kernels reorder sums (XNNPACK), ~1e-6 measured. float16: weights rounded to fp16 (rel.
    # error <= 4.9e-4), computed in fp32. dynamic: int8 weights and, in hybrid kernels, int8-quantized
    # activations (tensors under 1024 elements stay float32).
    quantizations = {
        "dynamic": Quantization(8, "dynamic range: int8 weights, ~a quarter of the size, some accuracy loss"),
        "float16": Quantization(16, "float16: half the size, tiny accuracy loss (~1e-3)"),
    }
    preflight_knows_ops = False  # see preflight()
    # Measured (TF 2.19): builtins and SELECT_TF_OPS both fail with "'tf.X' op is neither a custom op nor a
    # flex op" (the Flex delegate holds TensorFlow's own kernels only); allow_custom_ops converts, and LiteRT
    # then stops with "Encountered unresolved custom op".
    custom_op = ("a custom op: not a TFLite builtin, and Select TF ops (Flex) carry TensorFlow's own kernels only; it "
                 "needs a TFLite kernel registered in the app's interpreter (allow_custom_ops) or a Flex delegate "
                 "built with the op")
    upstream_creates_output_dir = False  # tflite_convert: "NotFoundError: .../model.tflite" otherwise

    def preflight(self, ops: dict[str, int]) -> dict[str, str]:
        """Nothing flagged ahead of time, on purpose.

        The TF → TFLite op mapping lives in compiled MLIR legalization patterns and the Flex
        allowlist in libtensorflow_cc; the pip package ships no readable list (only TFLite's own
        BuiltinOperator enum, in TFLite names). Many TF ops are also lowered into several builtins
        (Lgamma, Einsum...), so a name check would be wrong both ways. TFLite support is found at
        conversion time, with Flex (Select TF ops) as the fallback for ops that are not builtins.
        """
        return {}

    def upstream_command(self, options, info) -> list[str] | None:
        """tflite_convert from the original file, or None where it cannot do the same conversion.

        Measured with TF 2.19's tflite_convert: the default (V2) CLI takes only --saved_model_dir or
        --keras_model_file plus tag set/signature key, with no quantization or shape flags; those need
        --enable_v1_converter (TF1 session path; also the only one taking --graph_def_file, binary or
        text). --input_shapes can't say -1. --keras_model_file fails ('NoneType' object is not callable)
        unless TF_USE_LEGACY_KERAS=1, and then loads Keras 2 (tf_keras) HDF5 files only. It can't bake in
        mean/scale preprocessing and takes no checkpoint or MetaGraph.
        """
        fmt = getattr(info.format, "value", info.format)
        keras2 = fmt == "keras_h5" and (info.producer or "").startswith("Keras 2")
        if options.has_preprocessing or (fmt not in ("saved_model", "graphdef", "graphdef_text") and not keras2):
            return None
        if options.op_libraries:
            return None  # no flag to load a custom op library, and TensorFlow cannot read the graph without it
        quant = options.quantization(self.name)
        overrides = dict(options.inputs)
        reshaped = bool(overrides) or options.batch is not None
        if keras2 and (reshaped or options.outputs):  # V1 Keras path: "input_arrays ... unsupported with Eager"
            return None
        # Only the V1 CLI reads GraphDefs, quantization, shapes and output names.
        v1 = fmt in ("graphdef", "graphdef_text") or bool(quant or reshaped or options.outputs)
        out = os.path.join(options.output_dir, self.name, self.main_file)
        argv = (["env", "TF_USE_LEGACY_KERAS=1"] if keras2 else []) + ["tflite_convert"]
        argv += ["--enable_v1_converter"] if v1 else []
        if fmt == "saved_model":
            argv += ["--saved_model_dir", options.model]
            if info.tag:
                argv += ["--saved_model_tag_set", ",".join(info.tag)]
            if info.signature:
                argv += ["--saved_model_signature_key", info.signature]
        else:
            argv += ["--keras_model_file" if keras2 else "--graph_def_file", options.model]
        argv += ["--output_file", out]
        if v1 and not keras2:
            # V1 names graph tensors; for SavedModels those differ from the signature keys.
            argv += ["--input_arrays", ",".join((i.tensor or i.name).removesuffix(":0") for i in info.inputs)]
            if fmt.startswith("graphdef") or options.outputs:
                from ..interface import final_outputs  # no TensorFlow
                outs = final_outputs(info, options)
                argv += ["--output_arrays", ",".join(outs)]
        if reshaped:
            shapes = []
            for i in info.inputs:
                dims = overrides.get(i.name, i.shape)
                if dims and options.batch is not None and i.name not in overrides:
                    dims = [options.batch, *dims[1:]]
                if dims is None or any(d < 0 for d in dims):
                    return None  # unknown rank or a -1 left: --input_shapes can't say so
                shapes.append(",".join(map(str, dims)))
            argv += ["--input_shapes", ":".join(shapes)]
        if quant:
            argv.append("--post_training_quantize")
            if quant == "float16":
                argv.append("--quantize_to_float16")
        return argv

    # --- conversion --------------------------------------------------------------------------

    def strategies(self, prepared):
        """The ladder (engine.ladder): builtins first, on the shared frozen graph, then on the model
        frozen with control flow v2 kept; a graph with TF1 loops (Enter/Exit) goes through TFLite's
        TF1 converter, which turns them into While (inside a tf.function they are "inputs from
        different frames"). Select TF ops (the Flex delegate) only as the last rung, on the last of
        those graphs: the report then says "select TF ops"."""
        import functools

        if prepared.weights:  # a large model (Prepared.weights): weights streamed, else through a SavedModel
            # The cheap rungs before the costly ones: streamed on each graph (the second is built only if
            # reached), then with Select TF ops on the last; then the same through a SavedModel.
            yield f"{prepared.strategy}, streamed", prepared, self._convert_streamed
            graphs = [(name, rung) for name, rung, _ in super().strategies(prepared)]
            select = functools.partial(self._convert_streamed, select_tf_ops=True)
            yield from ((f"{name}, streamed", rung, self._convert_streamed) for name, rung in graphs[1:])
            yield f"{graphs[-1][0]}, streamed, select TF ops", graphs[-1][1], select
            yield from ((f"{name}, as a SavedModel", rung, self._convert_large) for name, rung in graphs)
            select = functools.partial(self._convert_large, select_tf_ops=True)
            yield f"{graphs[-1][0]}, as a SavedModel, select TF ops", graphs[-1][1], select
            return
        last = None
        for name, rung, _ in super().strategies(prepared):
            last = (name, rung, self.convert)
            yield last
        if {n.op for n in prepared.graph_def.node} & TF1_LOOP_OPS and last[1] is prepared:
            last = ("frozen graph, TFLite's TF1 converter", prepared, functools.partial(self.convert, tf1_converter=True))
            yield last
        name, rung, convert = last
        yield f"{name}, select TF ops", rung, functools.partial(convert, select_tf_ops=True)

    def convert(self, prepared, options, outdir: Path, log, *, select_tf_ops: bool = False,
                tf1_converter: bool = False) -> None:
        import tensorflow as tf
        from tensorflow.lite.python.convert_phase import ConverterError

        from engine.fake_quant import is_quantization_aware

        quant = options.quantization(self.name)

        def converter():
            if tf1_converter:  # reads the .pb itself; no SignatureDef in its output (see load())
                return tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
                    str(prepared.graph_path), [i.name for i in prepared.inputs], list(prepared.outputs))
            func, holder = _signature_function(prepared)
            return tf.lite.TFLiteConverter.from_concrete_functions([func], holder)

        # A quantization-aware graph (FakeQuant ops) becomes an int8 model: its ranges are the quantization.
        qat = not quant and is_quantization_aware(prepared.graph_def)

        def run() -> bytes:
            conv = converter()
            if quant or qat:  # "dynamic": int8 weights, float activations; "float16": fp16 weights
                conv.optimizations = [tf.lite.Optimize.DEFAULT]
                if quant == "float16":
                    conv.target_spec.supported_types = [tf.float16]
            conv.target_spec.supported_ops = _supported_ops(select_tf_ops)
            return conv.convert()

        for i in prepared.inputs:
            if i.shape is None:  # TFLite records unknown rank as shape [] and resizes at run time
                log(f"input '{i.name}' has unknown rank; model.tflite lists it as shape [] — call "
                    f"resize_tensor_input before allocate_tensors, or fix it, e.g. --input '{i.name}[1,16]'")
        mode = f" ({quant} quantization)" if quant else " to int8 (FakeQuant ranges)" if qat else ""
        log("converting" + mode + (" with Select TF ops" if select_tf_ops else ""))
        try:
            data = run()
        except ConverterError as e:
            flex, custom = _ops_by_code(e, FLEX), _ops_by_code(e, CUSTOM)
            if custom:
                also = f"; Flex would cover {_describe(flex)}" if flex else ""
                raise ConversionFailed(f"TFLite has no builtin or Flex kernel for {_describe(custom)}{also}") from None
            if flex and not select_tf_ops:
                raise ConversionFailed(f"not TFLite builtins (Select TF ops needed): {_describe(flex)}") from None
            raise ConversionFailed(f"TFLite converter failed{' with Select TF ops' if select_tf_ops else ''}: "
                                   f"{_first_error(e)}{_shape_hint(prepared)}") from None
        if select_tf_ops:
            log("converted with Select TF ops: model.tflite needs the Flex delegate (tensorflow pip package, "
                "or the select-ops library)")
        (Path(outdir) / self.main_file).write_bytes(data)
        size = f"wrote {self.main_file}, {human_size(len(data))}"
        if quant:  # the frozen float32 GraphDef is the "before" size: weights are almost all of it
            size += f" ({quant}-quantized; float32 graph was {human_size(prepared.graph_def.ByteSize())})"
        log(size)

    def _convert_streamed(self, prepared, options, outdir: Path, log, *, select_tf_ops: bool = False) -> None:
        """A large model converted without its weights, which are then written into model.tflite from the
        mapped file (engine.backends.tflite_weights): the memory of one weight at a time, not ~3x them all."""
        from tensorflow.lite.python.convert_phase import ConverterError

        from . import tflite_weights

        quant = options.quantization(self.name)
        if quant not in (None, "float16"):
            raise ConversionFailed(f"{quant} quantization needs the converter to hold the weights (its hybrid kernels)")
        log("converting the graph without its weights" + (" (float16 quantization)" if quant else ""))
        try:
            tflite_weights.convert(prepared, quant, Path(outdir) / self.main_file, _signature_function, log,
                                   supported_ops=_supported_ops(select_tf_ops))
        except ConverterError as e:
            raise ConversionFailed(f"TFLite converter failed on the graph without its weights: {_first_error(e)}") from None
        size = (Path(outdir) / self.main_file).stat().st_size
        total = sum(w.nbytes for w in prepared.weights.values())
        log(f"wrote {self.main_file}, {human_size(size)}"
            + (f" ({quant}-quantized; float32 weights were {human_size(total)})" if quant else ""))

    def _convert_large(self, prepared, options, outdir: Path, log, *, select_tf_ops: bool = False) -> None:
        """A model whose weights stay out of the GraphDef (Prepared.weights). The converter gets a
        SavedModel of the prepared graph with the weights as variables, written here, and writes the
        weights after the FlatBuffer at offsets (its buffer-offset mode, which LiteRT reads): one
        FlatBuffer alone stops at 2 GB. The mapped weights are evicted first (engine.weights): the
        converter's copy is then the only one in memory, though it still needs ~3x the weights."""
        import gc

        import tensorflow as tf
        from tensorflow.lite.python.convert_phase import ConverterError

        from ..resources import GIB, available_memory
        from ..weights import evict

        quant = options.quantization(self.name)
        total = sum(w.nbytes for w in prepared.weights.values())
        need, free = 3 * total + GIB, available_memory()
        if free is not None and need > free:  # the up-front check counted the streamed rung's needs only
            raise ConversionFailed(f"the TFLite converter holds about 3 copies of the {human_size(total)} of weights "
                                   f"and needs about {human_size(need)} of memory; {human_size(free)} is available")
        saved = outdir.parent / f"{outdir.name}-savedmodel"
        log(f"writing the model with its {human_size(total)} of weights as a SavedModel for the TFLite converter")
        _save_with_variables(prepared, saved)
        gc.collect()  # the variables written above
        evict(prepared.weights)
        try:
            conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
            conv._experimental_use_buffer_offset = True  # TF 2.15+: weights past the 2 GB FlatBuffer
            conv.target_spec.supported_ops = _supported_ops(select_tf_ops)
            if quant:
                conv.optimizations = [tf.lite.Optimize.DEFAULT]
                if quant == "float16":
                    conv.target_spec.supported_types = [tf.float16]
            log("converting" + (f" ({quant} quantization)" if quant else "") + ", weights at buffer offsets")
            try:
                data = conv.convert()
            except ConverterError as e:
                raise ConversionFailed(f"TFLite converter failed: {_first_error(e)}") from None
            del conv
        finally:
            import shutil

            shutil.rmtree(saved, ignore_errors=True)
        (Path(outdir) / self.main_file).write_bytes(data)
        log(f"wrote {self.main_file}, {human_size(len(data))}" + (f" ({quant}-quantized; float32 weights were "
                                                                 f"{human_size(total)})" if quant else ""))

    def load(self, outdir: Path, prepared, threads: int | None = None):
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter  # tf.lite.Interpreter is deprecated

        # TensorFlow is loaded in this process, so LiteRT finds its Flex delegate (Select TF ops).
        interpreter = Interpreter(model_path=str(Path(outdir) / self.main_file), num_threads=threads)
        if SIGNATURE not in interpreter.get_signature_list():  # TFLite's TF1 converter writes none
            return _run_by_tensor_names(interpreter, prepared)
        runner = interpreter.get_signature_runner(SIGNATURE)  # resizes inputs to the feeds each call
        dtypes = {k: d["dtype"] for k, d in runner.get_input_details().items()}
        missing = [i.name for i in prepared.inputs if i.name not in dtypes]
        if missing:
            raise ConversionFailed(f"model.tflite signature {SIGNATURE!r} lacks inputs {missing}; has {sorted(dtypes)}")

        def run(feeds):
            result = runner(**{k: np.asarray(v, dtype=dtypes[k]) for k, v in feeds.items()})
            return {name: result[name] for name in prepared.outputs}

        return run

    def snippet(self, path: str, inputs, options, strategy=None) -> str:
        """Python: LiteRT's interpreter runs the model on zeros, by its signature (the TF1 converter's
        model has none: by its tensors)."""
        from . import numpy_zeros, quoted

        head = (f"import numpy as np\nfrom ai_edge_litert.interpreter import Interpreter  # pip install ai-edge-litert\n"
                f"interpreter = Interpreter(model_path={quoted(path)})\n")
        if strategy and "TF1 converter" in strategy:
            feeds = ", ".join(f"{quoted(i.name)}: {numpy_zeros(i)}" for i in inputs)
            return (head + f"feeds = {{{feeds}}}\n"
                    "for d in interpreter.get_input_details():\n"
                    "    interpreter.resize_tensor_input(d['index'], feeds[d['name']].shape)\n"
                    "interpreter.allocate_tensors()\n"
                    "for d in interpreter.get_input_details():\n"
                    "    interpreter.set_tensor(d['index'], feeds[d['name']])\n"
                    "interpreter.invoke()\n"
                    "print({d['name']: interpreter.get_tensor(d['index']).shape for d in interpreter.get_output_details()})")
        feeds = ", ".join(f"{quoted(i.name)}: {numpy_zeros(i)}" for i in inputs)
        return (head + f"run = interpreter.get_signature_runner({quoted(SIGNATURE)})\n"
                f"outputs = run(**{{{feeds}}})\n"
                "print({name: value.shape for name, value in outputs.items()})")

def _run_by_tensor_names(interpreter, prepared):
    """A runner for a model without SignatureDef: tensors are named after prepared's inputs/outputs."""
    import numpy as np

    ins = {d["name"]: d for d in interpreter.get_input_details()}
    outs = {d["name"]: d for d in interpreter.get_output_details()}
    missing = [n for n in [i.name for i in prepared.inputs] + list(prepared.outputs) if n not in ins and n not in outs]
    if missing:
        raise ConversionFailed(f"model.tflite lacks tensors {missing}; has {sorted(ins) + sorted(outs)}")

    def run(feeds):
        for name, value in feeds.items():
            interpreter.resize_tensor_input(ins[name]["index"], np.shape(value))
        interpreter.allocate_tensors()
        for name, value in feeds.items():
            interpreter.set_tensor(ins[name]["index"], np.asarray(value, dtype=ins[name]["dtype"]))
        interpreter.invoke()
        return {name: interpreter.get_tensor(outs[name]["index"]).copy() for name in prepared.outputs}

    return run


def _save_with_variables(prepared, path: Path) -> None:
    """Write prepared (inputs by name, dict outputs) as a SavedModel whose left-out weights are variables."""
    import tensorflow as tf

    holder = tf.Module()
    holder.weights = {}
    for name, array in prepared.weights.items():
        holder.weights[name] = tf.Variable(array, name=name.replace("/", "_"))
    specs = [tf.TensorSpec(None if i.shape is None else [None if d < 0 else d for d in i.shape],
                           tf.as_dtype(i.dtype), name=i.name) for i in prepared.inputs]
    graph_def, names, outputs = prepared.graph_def, [i.name for i in prepared.inputs], list(prepared.outputs)

    def body(*args):
        feeds = {f"{n}:0": a for n, a in zip(names, args)}
        feeds.update({f"{n}:0": v.read_value() for n, v in holder.weights.items()})
        tensors = tf.graph_util.import_graph_def(graph_def, input_map=feeds,
                                                 return_elements=[f"{o}:0" for o in outputs], name="")
        return dict(zip(outputs, tensors))

    serve = tf.function(body, input_signature=specs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tf.saved_model.save(holder, str(path), signatures={SIGNATURE: serve.get_concrete_function()})


def _supported_ops(select_tf_ops: bool) -> list:
    """Builtins, and with Select TF ops TensorFlow's own kernels too (the Flex delegate)."""
    import tensorflow as tf

    return [tf.lite.OpsSet.TFLITE_BUILTINS, *([tf.lite.OpsSet.SELECT_TF_OPS] if select_tf_ops else [])]


def _signature_function(prepared, weight_inputs: dict | None = None):
    """(ConcreteFunction, tf.Module holding it): graph_def with named inputs and dict outputs.
    weight_inputs: {input name: left-out weight}, fed as inputs too (engine.backends.tflite_weights)."""
    import tensorflow as tf

    specs = [tf.TensorSpec(None if i.shape is None else [None if d < 0 else d for d in i.shape],
                           tf.as_dtype(i.dtype), name=i.name) for i in prepared.inputs]
    graph_def, names, outputs = prepared.graph_def, [i.name for i in prepared.inputs], list(prepared.outputs)
    for key, name in (weight_inputs or {}).items():
        specs.append(tf.TensorSpec(prepared.weights[name].shape, tf.as_dtype(prepared.weights[name].dtype), name=key))
        names.append(name)

    def body(*args):
        tensors = tf.graph_util.import_graph_def(
            graph_def, input_map={f"{n}:0": a for n, a in zip(names, args)},
            return_elements=[f"{o}:0" for o in outputs], name="")
        return dict(zip(outputs, tensors))

    holder = tf.Module()
    holder.serve = tf.function(body, input_signature=specs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return holder.serve.get_concrete_function(), holder


def _shape_hint(prepared) -> str:
    """TFLite supports dynamic shapes only in part (its maintainers' advice: fix them); say how."""
    dynamic = [i for i in prepared.inputs if i.shape is None or -1 in i.shape]
    if not dynamic:
        return ""
    fixed = " ".join(f"--input '{i.name}[{','.join(str(max(d, 1)) for d in (i.shape or [1, 16]))}]'"
                     for i in dynamic)
    return f" (inputs with dynamic dimensions often cause this; fix them, e.g. {fixed})"


def _ops_by_code(error, code: str) -> dict[str, list[str]]:
    """{TF op type: [node names]} from the converter's structured errors with this error code."""
    found: dict[str, list[str]] = {}
    for d in getattr(error, "errors", []) or []:
        if d.error_code != getattr(d, code):
            continue
        op = d.operator.name.removeprefix("tf.")
        # The innermost call site is "node@function": our import keeps the GraphDef's node names.
        node = next((c.name.split("@")[0] for c in d.location.call if c.name), "?")
        found.setdefault(op, []).append(node)
    return found


def _describe(ops: dict[str, list[str]]) -> str:
    return "; ".join(f"{op} (nodes: {', '.join(nodes[:5])}{', …' if len(nodes) > 5 else ''})"
                     for op, nodes in sorted(ops.items()))


def _first_error(error) -> str:
    """The first 'error:' line of MLIR's diagnostics, without the call-site noise."""
    for d in getattr(error, "errors", []) or []:
        if d.error_message:
            return d.error_message.splitlines()[0]
    lines = [ln for ln in str(error).splitlines() if "error:" in ln]
    return (lines[0].split("error:", 1)[1].strip() if lines else str(error).splitlines()[0])[:300]


BACKEND = TFLiteBackend()
