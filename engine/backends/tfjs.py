"""TensorFlow.js target: a graph model from the prepared frozen GraphDef, or a layers model from a
Keras file; verified by running it with @tensorflow/tfjs in Node (tfjs_runner.js).

tensorflowjs imports tensorflow_decision_forests, tensorflow_hub and jax at module level (~11 s),
so it is imported inside convert only; preflight reads its op lists without importing it.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import UserError
from ..rewrites import REWRITTEN, erfc_as_erf
from . import Backend, ConversionFailed, Quantization, VerifierUnavailable

TFJS_NPM = "@tensorflow/tfjs@4.22.0"
NODE_CACHE = Path(os.environ.get("TFWIZARD_NODE_CACHE", "~/.cache/tfwizard/node")).expanduser()
RUNNER = Path(__file__).with_name("tfjs_runner.js")
# tensorflowjs lets these through its op check when debug ops are stripped (its default and ours).
DEBUG_OPS = {"Assert", "CheckNumerics", "Print"}
# In the op inventory of a SavedModel or a graph with variables, but gone once frozen and inlined.
FROZEN_AWAY = {"VarHandleOp", "ReadVariableOp", "VariableV2", "Variable", "AutoReloadVariable", "Assign",
               "AssignVariableOp", "StatefulPartitionedCall", "PartitionedCall", "NoOp", "ResourceGather"}
LOWERED_CONTROL_FLOW = {"Switch", "Merge", "Enter", "Exit", "NextIteration", "LoopCond"}


@functools.cache
def supported_ops() -> frozenset[str]:
    """TF op names tensorflowjs converts, from its bundled op_list/*.json (found without importing it)."""
    spec = importlib.util.find_spec("tensorflowjs")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    names = set()
    for path in sorted(Path(list(spec.submodule_search_locations)[0], "op_list").glob("*.json")):
        names.update(op["tfOpName"] for op in json.loads(path.read_text()))
    return frozenset(names)


def _ops_with_nodes(graph_def, ops) -> str:
    """'Foo (a, b), Bar (c)': where each op occurs, for error messages."""
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    where = {op: [n.name for n in nodes if n.op == op] for op in sorted(ops)}
    return ", ".join(f"{op} ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})" for op, names in where.items())


class TfjsBackend(Backend):
    name = "tfjs"
    title = "TensorFlow.js"
    short_title = "TF.js"
    note = "runs in the browser or Node.js"
    runtime = "TF.js in Node (cpu)"  # what --benchmark times (engine.benchmark)
    benchmark_threads = 1  # the pure-JavaScript CPU backend has one thread, whatever it is given
    main_file = "model.json"
    modules = ("tensorflowjs",)
    # tensorflowjs 4.22 pulls tensorflow-decision-forests, which pins TensorFlow 2.19 exactly
    python_limit = ((3, 13), "tensorflowjs 4.22 needs TensorFlow 2.19, which has no Python 3.13 build")
    # Weights only are quantized (activations stay float32): float16 keeps ~3 significant digits,
    # uint16 affine steps are range/65535, uint8 steps range/255.
    quantizations = {
        "float16": Quantization(16, "float16: half the size, tiny accuracy loss (~1e-3)"),
        "uint8": Quantization(8, "uint8: a quarter of the size, visible accuracy loss"),
        "uint16": Quantization(16, "uint16: half the size, small accuracy loss"),
    }
    quantize_nodes = True  # tensorflowjs_converter's --quantize_float16=conv*,dense*
    preflight_knows_ops = True
    custom_op = "a custom op: TensorFlow.js has no kernel for it; one would have to be registered in JavaScript (tf.registerOp)"

    formats = {"graph": "graph model: fastest inference", "layers": "layers model: can be trained further in the browser"}
    default_shard_bytes = 4 * 1024 * 1024  # tensorflowjs_converter's --weight_shard_size_bytes default

    def check_options(self, options) -> None:
        if options.tfjs_format not in self.formats:
            raise UserError(f"--tfjs-format {options.tfjs_format}: choose {' or '.join(self.formats)}")
        if options.tfjs_format == "layers" and (options.has_preprocessing or options.outputs):
            raise UserError("--tfjs-format layers converts the Keras model as it is and cannot add "
                            "mean/scale/reverse-channels or cut outputs; use --tfjs-format graph")

    def preflight(self, ops: dict[str, int]) -> dict[str, str]:
        if "InputLayer" in ops:  # a Keras layer inventory, not TF ops: nothing to check against
            return {}
        known = supported_ops()
        if not known:
            return {}
        skip = known | DEBUG_OPS | FROZEN_AWAY | REWRITTEN
        return {op: "not in TensorFlow.js's supported op list (tensorflowjs 4.22)" for op in ops if op not in skip}

    def upstream_command(self, options, info) -> list[str] | None:
        # tensorflowjs_converter re-joins argv with spaces and splits on spaces (converter.pip_main):
        # paths with spaces cannot be passed to it at all, quoted or not.
        fmt, layers = info.format, options.tfjs_format == "layers"
        if options.has_preprocessing or (options.outputs and fmt != "graphdef"):
            return None  # no mean/scale flags; only frozen graphs take output names
        if options.op_libraries:
            return None  # no flag to load a custom op library, and TensorFlow cannot read the graph without it
        if fmt == "keras_h5" and not layers and not (info.producer or "").startswith("Keras 2"):
            return None  # --input_format=keras loads with tf_keras: a Keras 3 .h5 fails ("batch_shape")
        out = os.path.join(options.output_dir, "tfjs")
        argv = ["tensorflowjs_converter"]
        # nargs='?' flags: a bare one must not be followed by a positional, which it would swallow.
        mode, patterns = options.quantization("tfjs"), options.quantize_nodes("tfjs")
        if mode:
            argv.append(f"--quantize_{mode}" + (f"={','.join(patterns)}" if patterns else ""))
        if fmt == "saved_model" and not layers:
            argv += ["--input_format=tf_saved_model", "--output_format=tfjs_graph_model"]
            sig, tag = options.signature or info.signature, options.tag or ",".join(info.tag or [])
            argv += [f"--signature_name={sig}"] * bool(sig) + [f"--saved_model_tags={tag}"] * bool(tag)
        elif fmt == "graphdef" and not layers:
            from ..interface import final_outputs  # no TensorFlow
            names = final_outputs(info, options)
            argv += ["--input_format=tf_frozen_model", f"--output_node_names={','.join(names)}"]
        elif fmt == "keras_h5":
            argv += ["--input_format=keras", f"--output_format=tfjs_{'layers' if layers else 'graph'}_model"]
        elif fmt == "keras_v3" and layers:
            argv += ["--input_format=keras_keras", "--output_format=tfjs_layers_model"]
        elif fmt == "tfjs_layers":  # re-sharded, quantized or as a graph model; it takes model.json itself
            argv += ["--input_format=tfjs_layers_model", f"--output_format=tfjs_{'layers' if layers else 'graph'}_model"]
        else:  # .pbtxt, checkpoints, MetaGraphs, .keras → graph model: no upstream input format takes them
            return None
        if options.weight_shard_size_bytes:
            argv.append(f"--weight_shard_size_bytes={options.weight_shard_size_bytes}")
        if layers and options.split_weights_by_layer:
            argv.append("--split_weights_by_layer")
        if not layers:
            # type=bool flags: bool("False") is True, so False is spelled as an empty value.
            if not options.strip_debug_ops:
                argv.append("--strip_debug_ops=")
            if options.control_flow_v2 and fmt != "graphdef":
                argv.append("--control_flow_v2=True")
            if options.use_structured_outputs_names and fmt != "graphdef":
                argv.append("--use_structured_outputs_names=True")
        if options.metadata:
            argv.append("--metadata=" + ",".join(options.metadata))
        return argv + [info.path if fmt == "tfjs_layers" else str(options.model), out]

    def convert(self, prepared, options, outdir: Path, log) -> None:
        quant, patterns = options.quantization("tfjs"), options.quantize_nodes("tfjs")
        qmap = {quant: patterns or True} if quant else None
        metadata = _read_metadata(options.metadata)
        if options.tfjs_format == "layers":
            self._convert_layers(prepared, options, outdir, log, qmap, metadata)
        else:
            self._convert_graph(prepared, options, outdir, log, qmap, metadata)
        model_json = json.loads((outdir / "model.json").read_text())
        before, after = _weight_bytes(model_json), sum(p.stat().st_size for p in outdir.iterdir() if p.name != "model.json")
        shards = sum(len(g["paths"]) for g in model_json["weightsManifest"])
        log(f"weights {before:,} bytes as float32 -> {after:,} bytes{f' ({quant})' if quant else ''} in {shards} shard(s)")

    def _convert_graph(self, prepared, options, outdir, log, qmap, metadata):
        graph_ops = {n.op for n in prepared.graph_def.node}
        if options.split_weights_by_layer:
            log("note: --split-weights-by-layer applies to layers models only; ignored for a graph model")
        if options.control_flow_v2 and graph_ops & LOWERED_CONTROL_FLOW:
            log("note: --control-flow-v2 has no effect: the prepared graph's control flow is already lowered")
        outputs = list(prepared.outputs)
        if options.use_structured_outputs_names:
            # What tensorflowjs does for a SavedModel's dict outputs: sorted keys in the metadata, and
            # outputs in that order; model.predict() then returns a map keyed by output name.
            outputs = sorted(outputs)
            metadata = {**(metadata or {}), "structuredOutputKeys": outputs}
        if prepared.weights and qmap:
            raise ConversionFailed("--quantize for TF.js models over 2 GB is not supported; convert without "
                                   "--quantize for tfjs")
        tfjs_tf = _import_tfjs("tf_saved_model_conversion_v2", log)

        graph_path = prepared.graph_path
        rewritten = erfc_as_erf(prepared.graph_def)
        if rewritten is not prepared.graph_def:  # tensorflowjs reads a file: the rewritten graph's, beside outdir
            graph_path = outdir.parent / f"{outdir.name}-rewritten.pb"
            graph_path.write_bytes(rewritten.SerializeToString())
            log("Erfc written as 1 - Erf (TF.js has Erf only)")
        del rewritten
        log(f"converting frozen graph ({len(prepared.graph_def.node)} nodes) to a TF.js graph model")
        try:
            tfjs_tf.convert_tf_frozen_model(
                str(graph_path), ",".join(outputs), str(outdir), quantization_dtype_map=qmap,
                strip_debug_ops=options.strip_debug_ops,
                weight_shard_size_bytes=options.weight_shard_size_bytes or self.default_shard_bytes, metadata=metadata)
        except ValueError as e:
            if "Unsupported Ops" not in str(e):
                raise
            ops = {op.strip() for op in str(e).splitlines()[-1].split(",") if op.strip()}
            raise ConversionFailed(f"TensorFlow.js has no kernel for: {_ops_with_nodes(prepared.graph_def, ops)}") from None
        if prepared.weights:
            _write_left_out_weights(outdir, prepared.weights, options.weight_shard_size_bytes or self.default_shard_bytes)

    def check(self, options, info) -> None:
        if options.tfjs_format == "layers" and info.op_kind != "keras_layer":
            raise UserError("--tfjs-format layers needs a Keras model (.h5/.keras) or a TF.js layers model; use the default graph format")
        if options.tfjs_format == "layers" and info.custom_classes:  # tf.loadLayersModel rebuilds each layer from its JavaScript class
            raise UserError(f"--tfjs-format layers: TF.js would need {', '.join(info.custom_classes)} written in "
                            "JavaScript (tf.serialization.registerClass) to load the model; use --tfjs-format graph")

    def _convert_layers(self, prepared, options, outdir, log, qmap, metadata):
        if options.inputs or options.batch:
            log("note: a layers model keeps the Keras input shapes; --input/--batch overrides are not applied")
        converter = _import_tfjs("converter", log)

        kw = dict(quantization_dtype_map=qmap, split_weights_by_layer=options.split_weights_by_layer,
                  weight_shard_size_bytes=options.weight_shard_size_bytes or self.default_shard_bytes, metadata=metadata)
        with tempfile.TemporaryDirectory(prefix="tfwizard-tfjs-") as tmp:
            path = Path(prepared.keras_path)
            log(f"converting {path.name} to a TF.js layers model")
            if path.read_bytes()[:4] == b"PK\x03\x04":  # .keras zip
                # The upstream unzips the .keras next to the file: give it a private copy.
                copy = Path(tmp, "model", "model.keras")
                copy.parent.mkdir(exist_ok=True)
                shutil.copyfile(path, copy)
                converter.dispatch_keras_keras_to_tfjs_layers_model_conversion(str(copy), str(outdir), **kw)
            else:
                converter.dispatch_keras_h5_to_tfjs_layers_model_conversion(str(path), str(outdir), **kw)
        version = json.loads((outdir / "model.json").read_text())["modelTopology"].get("keras_version", "")
        if version.startswith("3."):
            # tensorflowjs writes the Keras 3 config as is (batch_shape, DTypePolicy, new inbound_nodes),
            # which tf.loadLayersModel 4.22 rejects ("An InputLayer should be passed either a
            # batchInputShape or an inputShape", tensorflow/tfjs#8494).
            raise UserError(f"--tfjs-format layers: TF.js 4.22 cannot load layers models made from Keras 3 "
                            f"(this file was saved by Keras {version}); use --tfjs-format graph, or save the "
                            "model with tf_keras (Keras 2) to .h5")

    def load(self, outdir: Path, prepared, threads: int | None = None):  # JavaScript's CPU backend: one thread
        node = shutil.which("node")
        if node is None:
            raise VerifierUnavailable("node not found: install Node.js 18+ to verify TF.js output")
        modules = _tfjs_modules()
        model_json = json.loads((Path(outdir) / "model.json").read_text())
        layers = model_json.get("format") == "layers-model"
        fetch = {} if layers else _fetch_names(model_json, prepared.outputs)
        # Grappler drops inputs no output depends on; TF.js refuses feeds for nodes it doesn't have.
        known = None if layers else ({n["name"] for n in model_json["modelTopology"].get("node", [])}
                                     | set((model_json.get("signature") or {}).get("inputs") or {}))
        env = {**os.environ, "NODE_PATH": str(modules)}

        def call(feeds: dict, timing: dict | None = None) -> tuple[dict, list[float] | None]:
            import numpy as np

            request = {"inputs": {name: _encode(np.asarray(v)) for name, v in feeds.items() if known is None or name in known},
                       "outputs": list(fetch.values()), **({"time": timing} if timing else {})}
            with tempfile.TemporaryDirectory(prefix="tfwizard-tfjs-run-") as tmp:
                inp, out = Path(tmp, "in.json"), Path(tmp, "out.json")
                inp.write_text(json.dumps(request))
                proc = subprocess.run([node, str(RUNNER), str(outdir), str(inp), str(out)], env=env,
                                      capture_output=True, text=True, timeout=600)
                if proc.returncode != 0:
                    lines = proc.stderr.strip().splitlines() or ["(no output)"]
                    why = next((ln.split(": ", 1)[1] for ln in lines if ln.startswith("tfjs_runner error: ")), lines[-1])
                    if why.startswith("Cannot compute the outputs"):  # seen on NMS inside while loops (OD API models)
                        why = (why.split(". ")[0] + ": TF.js' graph executor does not follow this graph's control "
                               "flow; convert it to ONNX or OpenVINO instead")
                    raise ConversionFailed(f"TF.js could not run the converted model: {why}")
                result = json.loads(out.read_text())
                timings = json.loads(Path(f"{out}.timings").read_text()) if timing else None
            if not fetch:  # layers model: outputs come back by output layer name, in model order
                by_order = list(result.values())
                return {name: _decode(result.get(name) or by_order[i]) for i, name in enumerate(prepared.outputs)}, timings
            return {name: _decode(result[fetch[name]]) for name in prepared.outputs}, timings

        def run(feeds: dict) -> dict:
            return call(feeds)[0]

        # --benchmark: timed inside Node (engine.benchmark), on the one-thread JavaScript CPU backend
        run.timed = lambda feeds, runs, warmup: call(feeds, {"runs": runs, "warmup": warmup})[1]
        return run

    def snippet(self, path: str, inputs, options, strategy=None) -> str:
        """JavaScript (an ES module for Node 18+ with @tensorflow/tfjs, the package verification uses):
        reads model.json and its shards from disk, loads the model and runs it on zeros. In a browser,
        tf.loadGraphModel(url of model.json) does the reading."""
        from pathlib import PurePosixPath

        from . import example_shape, quoted

        def tensor(i):
            shape = example_shape(i.shape)
            if i.dtype == "string":
                return f'tf.fill({shape}, "word", "string")'
            kind = "bool" if i.dtype == "bool" else "float32" if (i.dtype or "float").startswith(("float", "bfloat")) else "int32"
            return f'tf.zeros({shape}, "{kind}")'

        layers = options.tfjs_format == "layers"
        folder = str(PurePosixPath(path).parent) + "/"
        run = (f"model.predict([{', '.join(tensor(i) for i in inputs)}])" if layers
               else f"await model.executeAsync({{{', '.join(f'{quoted(i.name)}: {tensor(i)}' for i in inputs)}}})")
        return ("// Node 18+, as an ES module (.mjs), after `npm install @tensorflow/tfjs`; in a browser:\n"
                f"// const model = await tf.{'loadLayersModel' if layers else 'loadGraphModel'}(\"<URL of model.json>\");\n"
                'import * as tf from "@tensorflow/tfjs";\nimport { readFileSync } from "node:fs";\n'
                f"const dir = {quoted(folder)};\n"
                'const json = JSON.parse(readFileSync(dir + "model.json", "utf8"));\n'
                "const shards = Buffer.concat(json.weightsManifest.flatMap((g) => g.paths.map((p) => readFileSync(dir + p))));\n"
                f"const model = await tf.{'loadLayersModel' if layers else 'loadGraphModel'}(tf.io.fromMemory({{...json, "
                "weightSpecs: json.weightsManifest.flatMap((g) => g.weights),\n"
                "  weightData: shards.buffer.slice(shards.byteOffset, shards.byteOffset + shards.length)}));\n"
                f"const outputs = [{run}].flat();\n"
                "console.log(outputs.map((t) => t.shape));")

def _import_tfjs(module: str, log):
    """tensorflowjs.converters.<module>. tensorflow_decision_forests (imported by tensorflowjs) prints
    an advert, and when sys.stderr is not the real fd 2 (pytest, a redirect) it imports IPython to
    show it in HTML: ModuleNotFoundError. Its documented switch turns the advert off."""
    import importlib

    log("importing tensorflowjs")
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    return importlib.import_module(f"tensorflowjs.converters.{module}")


def _read_metadata(entries) -> dict | None:
    """--metadata 'key:path.json' entries → {key: parsed JSON}, stored as userDefinedMetadata."""
    out = {}
    for entry in entries:
        key, sep, path = entry.partition(":")
        if not sep or not key or not path:
            raise UserError(f"--metadata {entry!r}: expected KEY:FILE.json")
        try:
            out[key] = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"--metadata {entry!r}: cannot read JSON from {path} ({e}); check the file") from None
    return out or None


def _write_left_out_weights(outdir: Path, weights: dict, shard_bytes: int) -> None:
    """A large model's weights (Prepared.weights) are Placeholders in model.json: make each a Const
    node again, its value in a weights group of our own, streamed from the arrays into shards of
    shard_bytes (tensorflowjs's writer would join them all in one buffer first)."""
    path = outdir / "model.json"
    model_json = json.loads(path.read_text())
    nodes = {n["name"]: n for n in model_json["modelTopology"].get("node", [])}
    present = [(name, array) for name, array in weights.items() if name in nodes]
    for name, array in present:
        dtype = nodes[name]["attr"]["dtype"]["type"]
        nodes[name]["op"] = "Const"
        nodes[name]["attr"] = {"value": {"tensor": {"dtype": dtype, "tensorShape": {
            "dim": [{"size": str(d)} for d in array.shape]}}}, "dtype": {"type": dtype}}
    total = sum(a.nbytes for _, a in present)
    count = max(1, -(-total // shard_bytes))
    paths = [f"weights-shard{k + 1}of{count}.bin" for k in range(count)]
    shard, room, files = -1, 0, []
    try:
        for _, array in present:
            data = memoryview(array.reshape(-1)).cast("B")
            while len(data):
                if not room:
                    shard += 1
                    files.append(open(outdir / paths[shard], "wb"))
                    room = shard_bytes
                part = data[:room]
                files[-1].write(part)
                room -= len(part)
                data = data[len(part):]
    finally:
        for f in files:
            f.close()
    model_json["weightsManifest"].append({"paths": paths[:shard + 1], "weights": [
        {"name": name, "shape": list(a.shape), "dtype": str(a.dtype)} for name, a in present]})
    path.write_text(json.dumps(model_json))


def _weight_bytes(model_json) -> int:
    """Bytes of the weights before quantization (float32 and int32 take 4 bytes, bool 1)."""
    return sum(math.prod(w["shape"]) * {"bool": 1, "string": 0}.get(w["dtype"], 4)
               for group in model_json["weightsManifest"] for w in group["weights"])


def _fetch_names(model_json, outputs) -> dict[str, str]:
    """Prepared output name → the name to fetch from the graph model (its signature key or node)."""
    sig = (model_json.get("signature") or {}).get("outputs") or {}
    names = set(sig) | {n["name"] for n in model_json["modelTopology"].get("node", [])}
    fetch = {}
    for name in outputs:
        hits = [name] if name in names else [k for k, v in sig.items() if v.get("name", "").split(":")[0] == name]
        if not hits:
            raise ConversionFailed(f"output {name!r} is missing from the TF.js model")
        fetch[name] = hits[0]
    return fetch


def _encode(arr) -> dict:
    import numpy as np

    if arr.dtype.kind in "OS":  # strings: each one's bytes, base64
        return {"dtype": "string", "shape": list(arr.shape),
                "strings": [base64.b64encode(s if isinstance(s, bytes) else str(s).encode()).decode() for s in arr.reshape(-1)]}
    dtype = {"f": "float32", "i": "int32", "u": "int32", "b": "bool"}.get(arr.dtype.kind)
    if dtype is None:
        raise ConversionFailed(f"cannot feed {arr.dtype} input to TF.js verification")
    data = arr.astype(np.uint8 if dtype == "bool" else dtype).tobytes()
    return {"dtype": dtype, "shape": list(arr.shape), "data": base64.b64encode(data).decode()}


def _decode(spec):
    import numpy as np

    dtype = {"float32": np.float32, "int32": np.int32, "bool": np.uint8}[spec["dtype"]]
    arr = np.frombuffer(base64.b64decode(spec["data"]), dtype=dtype).reshape(spec["shape"])
    return arr.astype(bool) if spec["dtype"] == "bool" else arr.copy()


def _tfjs_modules() -> Path:
    """node_modules holding @tensorflow/tfjs, installed with npm into the cache on first use."""
    modules = NODE_CACHE / "node_modules"
    if (modules / "@tensorflow" / "tfjs" / "package.json").is_file():
        return modules
    npm = shutil.which("npm")
    if npm is None:
        raise VerifierUnavailable(f"npm not found: needed once to install {TFJS_NPM} for TF.js verification")
    # Install beside the cache and rename into place, so a concurrent or interrupted run never
    # sees a half-installed tree.
    NODE_CACHE.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="node.", dir=NODE_CACHE.parent))
    try:
        proc = subprocess.run([npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", TFJS_NPM],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise VerifierUnavailable(f"could not install {TFJS_NPM} with npm: {tail}")
        try:
            staging.rename(NODE_CACHE)
        except OSError:  # another run got there first, or a broken cache is in the way
            if not (modules / "@tensorflow" / "tfjs" / "package.json").is_file():
                raise VerifierUnavailable(f"{NODE_CACHE} exists but holds no {TFJS_NPM}; remove it and retry") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return modules


BACKEND = TfjsBackend()
