"""OpenVINO IR target: openvino.convert_model on the prepared frozen GraphDef, saved as model.xml + .bin,
verified with the OpenVINO CPU runtime at f32 precision.

convert_model reads the .pb path with its C++ TensorFlow frontend alone (a GraphDef object would go
through TensorFlow's graph iterator). Frozen-graph tensors are named "node:0" there, so the IR's
tensor names are then reset to exactly the prepared input/output names.

preflight reads openvino_ops.txt: which TensorFlow ops OpenVINO's TF frontend has a conversion rule
for. The frontend exposes no op list, so generate_ops_file() asks it, once per OpenVINO release.
"""

from __future__ import annotations

import functools
import re
import sys
import time
from pathlib import Path

from ..text import human_size
from . import Backend, ConversionFailed, Quantization

# `import openvino` and every convert_model report to Google Analytics (and count the use in
# ~/intel/) unless the user opted out. A tool converting someone's model should not do that on its
# own: with openvino_telemetry unimportable, OpenVINO uses the stub it ships for that case. Only
# OpenVINO itself imports this module, and only this module imports OpenVINO.
sys.modules.setdefault("openvino_telemetry", None)

OPS_FILE = Path(__file__).with_name("openvino_ops.txt")
# TF1 while-loop ops: no rule of their own, converted as a whole loop by the frontend (checked with
# a tf.compat.v1 while_loop graph); a lone node of these types looks unsupported to the probe.
LOOP_OPS = {"Exit", "NextIteration", "LoopCond"}
# Forms `ovc` reads itself. Keras .h5/.keras: "Cannot recognize input model". [graph.pb, checkpoint]
# pairs (V1 and V2): "Variable ... is not initialized". So those get no upstream command.
OVC_FORMATS = {"graphdef", "graphdef_text", "metagraph", "saved_model"}
NO_RULE = "no conversion rule in OpenVINO's TF frontend"


@functools.cache
def missing_ops() -> frozenset[str]:
    """TF ops OpenVINO's TF frontend has no rule for: the '-Op' lines of OPS_FILE ('+Op' = has one)."""
    return frozenset(ln[1:].strip() for ln in OPS_FILE.read_text().splitlines() if ln.startswith("-"))


def parse_failure(message: str) -> dict[str, str]:
    """OpenVINO's OpConversionFailure text → {op type: why}.

    The report has '-- Op with a message:\\n<why>' blocks, then a Summary with
    '-- No conversion rule found for operations: A, B' and '-- Conversion is failed for: C'.
    """
    result = {}
    summary = re.search(r"No conversion rule found for operations: (.*)", message)
    for op in summary.group(1).split(", ") if summary else []:
        result[op.strip()] = NO_RULE
    for op, body in re.findall(r"^-- (\w+) with a message:\n(.*?)(?=^-- |^Summary:|\Z)", message, re.M | re.S):
        lines = [ln.strip() for ln in body.strip().splitlines() if ln.strip()]
        result[op] = lines[-1] if lines else "conversion failed"  # the last line says why; the rest is where
    return result


def preflight_model(path) -> dict[str, str]:
    """Convert a real model file (frozen .pb, SavedModel dir, .meta) with the TF frontend alone (no TF
    import) and return {op type: why} for what fails; {} when it converts. Costs about one conversion."""
    from openvino.frontend import FrontEndManager, OpConversionFailure

    fe = FrontEndManager().load_by_framework("tf")
    try:
        fe.convert(fe.load(str(path)))
    except OpConversionFailure as e:
        return parse_failure(str(e)) or {"(model)": _first_line(str(e))}
    return {}


def generate_ops_file(path: Path = OPS_FILE) -> int:
    """Write `path`: every op TensorFlow registers, marked + (the OpenVINO TF frontend has a rule) or -.

    Run once per OpenVINO/TensorFlow release (`python -c "from engine.backends.openvino import
    generate_ops_file as g; g()"`). It builds a GraphDef with one node per TF op and reads the
    frontend's "No conversion rule found" summary: a node with a rule fails inside its translator
    (wrong inputs) instead, which the summary lists separately. Takes ~1 s plus the TF import.
    """
    import tempfile
    from importlib.metadata import version

    from openvino.frontend import FrontEndManager
    from tensorboard.compat.proto import graph_pb2
    from tensorflow.core.framework import op_def_pb2
    from tensorflow.python.client import pywrap_tf_session as c_api
    import tensorflow as tf

    op_list = op_def_pb2.OpList.FromString(c_api.TF_GetBuffer(c_api.TF_GetAllOpList()))
    ops = sorted(op.name for op in op_list.op)
    fe = FrontEndManager().load_by_framework("tf")

    def no_rule(batch: list[str]) -> set[str]:
        graph = graph_pb2.GraphDef()
        graph.node.add(name="p", op="Placeholder").attr["dtype"].type = 1
        for op in batch:
            node = graph.node.add(name=f"n_{op}", op=op, input=["p"])
            node.attr["T"].type = 1
        with tempfile.NamedTemporaryFile(suffix=".pb") as f:
            f.write(graph.SerializeToString())
            f.flush()
            try:
                fe.convert(fe.load(f.name))
                return set()
            except Exception as e:  # noqa: BLE001 - a whole-graph error: split the batch to find its op
                if "Summary:" in str(e):
                    return {op for op, why in parse_failure(str(e)).items() if why == NO_RULE}
                if len(batch) == 1:
                    return set()  # special-cased by the frontend (LoopCond): it knows the op
                half = len(batch) // 2
                return no_rule(batch[:half]) | no_rule(batch[half:])

    missing = no_rule(ops) - LOOP_OPS
    header = (f"# Which TensorFlow {tf.__version__} ops OpenVINO {version('openvino')}'s TensorFlow frontend has a conversion "
              "rule for (+) or not (-).\n# Generated by engine.backends.openvino.generate_ops_file(); do not edit.\n")
    path.write_text(header + "".join(f"{'-' if op in missing else '+'}{op}\n" for op in ops))
    return len(ops) - len(missing)


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), text)


def _graph_name(name: str) -> str:
    """Frozen-graph tensor name for ovc: 'input' → 'input:0'; 'split:1' stays."""
    return name if re.search(r":\d+$", name) else f"{name}:0"


def _by_name(ports, names: list[str]) -> list:
    """The port carrying each frozen-graph name ('x' or 'x:0'), in the order of `names`."""
    found = []
    for name in names:
        matches = [p for p in ports if {name, f"{name}:0"} & set(p.get_names())]
        if len(matches) != 1:
            raise ConversionFailed(f"OpenVINO's model has {len(matches)} tensors named {name!r} "
                                   f"(it has {', '.join(sorted(n for p in ports for n in p.get_names()))})")
        found.append(matches[0])
    return found


def _weights_as_constants(model, weights: dict) -> None:
    """A large model's weights (Prepared.weights) were Parameters: make each a Constant sharing the
    array's memory, which save_model writes into model.bin."""
    from openvino import opset16

    for param in list(model.get_parameters()):
        array = next((weights[n.removesuffix(":0")] for n in param.output(0).get_names()
                      if n.removesuffix(":0") in weights), None)
        if array is None:
            continue
        const = opset16.constant(array, shared_memory=True)
        for target in list(param.output(0).get_target_inputs()):
            target.replace_source_output(const.output(0))
        model.remove_parameter(param)
    model.validate_nodes_and_infer_types()


class OpenVINOBackend(Backend):
    name = "openvino"
    title = "OpenVINO IR"
    short_title = "OpenVINO"
    note = "Intel CPUs, GPUs and NPUs"
    runtime = "OpenVINO (CPU plugin)"  # what --benchmark times (engine.benchmark)
    main_file = "model.xml"
    modules = ("openvino",)
    # fp32 runs at f32 (INFERENCE_PRECISION_HINT), so only op-order rounding differs. fp16 weights
    # carry ~5e-4 relative rounding each (decompressed to f32 at run time).
    quantizations = {"fp16": Quantization(16, "fp16 weight compression: half the size, tiny accuracy loss")}
    preflight_knows_ops = True
    custom_op = "a custom op: OpenVINO's TensorFlow frontend has no conversion rule for it; map it with a frontend extension (ovc --extension)"

    def preflight(self, ops: dict[str, int]) -> dict[str, str]:
        # Only TF ops known to lack a rule: op names the table doesn't know (custom ops, Keras layer
        # names) are left to the conversion itself, which names them with their nodes.
        return {op: NO_RULE for op in ops if op in missing_ops()}

    def upstream_command(self, options, info) -> list[str] | None:
        if info.format not in OVC_FORMATS:
            return None
        # ovc (unlike the legacy mo) has no --mean_values/--scale_values/--reverse_input_channels.
        if options.has_preprocessing:
            return None
        # ovc has no --tag/--signature: its frontend reads tag "serve", signature serving_default.
        if info.format == "saved_model" and (info.tag not in (None, ["serve"])
                                             or info.signature not in (None, "serving_default")):
            return None
        # ovc finds a MetaGraph's variables only under the .meta file's own prefix.
        if info.format == "metagraph" and info.checkpoint and \
                Path(info.checkpoint) != Path(options.model).with_suffix(""):
            return None
        from ..interface import final_inputs, final_outputs  # no TensorFlow

        graph = info.format != "saved_model"  # graphs: tensor names "node:0"; SavedModels: signature keys
        inputs = []  # final shapes (--input, --batch); switches like is_training left at their default
        for i in final_inputs(info, options):
            name = (i.tensor or _graph_name(i.name)) if graph else i.name
            inputs.append(name if i.shape is None else f"{name}[{','.join('?' if d == -1 else str(d) for d in i.shape)}]")
        outputs = [_graph_name(o) if graph else o for o in final_outputs(info, options)]
        if any(re.search(r"[,\[\]()<]", n) for n in outputs + [i.name for i in info.inputs]):
            return None  # ovc splits --input/--output on these characters
        argv = ["ovc", options.model, "--output_model", str(Path(options.output_dir, "openvino", "model.xml"))]
        argv += ["--input", ",".join(inputs)] if inputs else []
        argv += ["--output", ",".join(outputs)] if outputs else []
        # Spell the bool out: a bare --compress_to_fp16 parses as None (nargs='?'), i.e. no compression,
        # and leaving it out means True (ovc's default).
        return argv + [f"--compress_to_fp16={options.quantization('openvino') == 'fp16'}"]

    def convert(self, prepared, options, outdir: Path, log) -> None:
        import openvino as ov
        from openvino import opset16
        from openvino.frontend import OpConversionFailure

        started = time.perf_counter()
        shapes = [ov.PartialShape.dynamic() if i.shape is None else
                  ov.PartialShape([ov.Dimension() if d == -1 else ov.Dimension(d) for d in i.shape])
                  for i in prepared.inputs]
        weights = [(f"{name}:0", ov.PartialShape(list(w.shape))) for name, w in prepared.weights.items()]
        try:
            model = ov.convert_model(
                str(prepared.graph_path),
                input=[(f"{i.name}:0", s) for i, s in zip(prepared.inputs, shapes)] + weights,
                output=[f"{o}:0" for o in prepared.outputs],
            )
        except OpConversionFailure as e:
            raise ConversionFailed(self._failure_message(str(e), prepared)) from None
        if prepared.weights:
            _weights_as_constants(model, prepared.weights)
        # The IR would carry every alias of each tensor ("output:0", "Identity_3:0", ...): keep ours.
        # Match by name: convert_model does not keep the order of output= (nor promise that of input=).
        for port, info in zip(_by_name(model.inputs, [i.name for i in prepared.inputs]), prepared.inputs):
            port.get_tensor().set_names({info.name})
            port.get_node().set_friendly_name(info.name)
            if info.shape is None:
                log(f"input {info.name!r} has unknown rank: OpenVINO's CPU plugin needs model.reshape() "
                    "to a rank before compile_model")
        # Outputs that are the same tensor as an input or an earlier output would share one name set:
        # give each its own tensor through an Identity, so every prepared name stays unique.
        seen = {(p.get_node().get_instance_id(), 0) for p in model.inputs}
        results = {r.get_instance_id(): r for r in model.get_results()}
        ports = _by_name(model.outputs, prepared.outputs)
        for result, name in zip([results[p.get_node().get_instance_id()] for p in ports], prepared.outputs):
            source = result.input_value(0)
            if (source.get_node().get_instance_id(), source.get_index()) in seen:
                result.input(0).replace_source_output(opset16.identity(source).output(0))
            seen.add((source.get_node().get_instance_id(), source.get_index()))
            result.output(0).get_tensor().set_names({name})
        model.validate_nodes_and_infer_types()
        fp16 = options.quantization("openvino") == "fp16"
        xml = outdir / self.main_file
        ov.save_model(model, xml, compress_to_fp16=fp16)
        before = prepared.graph_path.stat().st_size
        after = xml.stat().st_size + xml.with_suffix(".bin").stat().st_size
        log(f"converted in {time.perf_counter() - started:.1f} s; frozen graph {human_size(before)} → "
            f"model.xml + model.bin {human_size(after)} ({'fp16' if fp16 else 'fp32'} weights)")

    @staticmethod
    def _failure_message(text: str, prepared) -> str:
        """'OpenVINO cannot convert: Foo (why) at a, b; ...' with the nodes found in the prepared graph."""
        failed = parse_failure(text)
        if not failed:
            return _first_line(text)
        graph = prepared.graph_def
        nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
        parts = []
        for op, why in sorted(failed.items()):
            names = [n.name for n in nodes if n.op == op]
            where = f" at {', '.join(names[:5])}{', ...' if len(names) > 5 else ''}" if names else ""
            parts.append(f"{op} ({why}){where}")
        return "OpenVINO cannot convert: " + "; ".join(parts)

    def load(self, outdir: Path, prepared, threads: int | None = None):
        import numpy as np
        import openvino as ov

        core = ov.Core()
        model = core.read_model(outdir / self.main_file)
        requests = {}  # input ranks → infer request

        def request_for(feeds):
            # The CPU plugin refuses inputs of unknown rank: give them the rank of the feed (dims stay
            # dynamic), as a user must with model.reshape() before compile_model.
            ranks = tuple(np.ndim(feeds[p.any_name]) if p.get_partial_shape().rank.is_dynamic else -1
                          for p in model.inputs)
            if ranks not in requests:
                m = model
                if any(r >= 0 for r in ranks):
                    m = model.clone()
                    m.reshape({p.any_name: ov.PartialShape([ov.Dimension()] * r)
                               for p, r in zip(model.inputs, ranks) if r >= 0})
                compiled = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                         **({"INFERENCE_NUM_THREADS": threads} if threads else {})})
                ports = {name: compiled.output(name) for name in prepared.outputs}
                requests[ranks] = (compiled.create_infer_request(), ports)
            return requests[ranks]

        if not any(p.get_partial_shape().rank.is_dynamic for p in model.inputs):
            request_for({})  # compile now, so a model the runtime refuses fails here

        def run(feeds):
            request, ports = request_for(feeds)
            results = request.infer({name: np.asarray(v) for name, v in feeds.items()})
            # Copy: the result arrays are views of the request's buffers, reused by the next call.
            return {name: np.array(results[port], copy=True) for name, port in ports.items()}

        return run

    def snippet(self, path: str, inputs, options, strategy=None) -> str:
        """Python: OpenVINO compiles the IR for the CPU and runs it on zeros."""
        from . import numpy_zeros, quoted

        feeds = ", ".join(f"{quoted(i.name)}: {numpy_zeros(i)}" for i in inputs)
        return (f"import numpy as np\nimport openvino as ov\n"
                f"model = ov.Core().compile_model({quoted(path)}, \"CPU\")\n"
                f"outputs = model({{{feeds}}})\n"
                "print({port.any_name: value.shape for port, value in outputs.items()})")

BACKEND = OpenVINOBackend()
