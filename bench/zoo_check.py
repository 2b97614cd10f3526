"""Checks upstream tools' outputs against TensorFlow, for bench/zoo.py (runs in its own process).

    python bench/zoo_check.py SPEC.json RESULT.json

SPEC: {"model", "format", "inputs" (inspect --json), "outputs", "targets": {target: path}}.
RESULT: {"reference": {...} or {"error"}, target: {"status": ok|mismatch|failed, "diff", "message"}}.

The inputs are the project's own seeded feeds (engine.verify.make_feeds), so upstream and ours see
the same numbers. Outputs of the converted models are matched to TensorFlow's by name where the
tool kept names (":0" stripped), else by position. Agreement is allclose per element,
|a-b| <= 1e-4 + 1e-4*|ref| (OpenVINO's layer-test rule); an empty output never counts as ok.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
ATOL = RTOL = 1e-4


def _short(name: str) -> str:
    return name.split(":")[0]


def feeds_for(inputs):
    from engine.verify import make_feeds

    infos = [SimpleNamespace(name=i["name"], dtype=i["dtype"], shape=i["shape"]) for i in inputs]
    feeds = make_feeds(infos)
    for i in inputs:  # pinned inputs (keep_prob, is_training, state) from the zoo entry
        if "value" in i:
            feeds[i["name"]] = np.full(i["shape"], i["value"], dtype=i["dtype"])
    return feeds


def reference(spec, feeds):
    """TensorFlow's outputs for the original model, by output name (inspect's names)."""
    import tensorflow as tf

    fmt, model = spec["format"], spec["model"]
    outs = [o["name"] for o in spec["outputs"]]
    if fmt == "saved_model":
        loaded = tf.saved_model.load(model, tags=spec.get("tags"))
        fn = loaded.signatures[spec.get("signature") or "serving_default"]
        result = fn(**{k: tf.constant(v) for k, v in feeds.items()})
        return {k: np.asarray(v) for k, v in result.items()}
    if fmt in ("keras_h5", "keras_v3"):
        model_obj = load_keras(model)
        got = model_obj(list(feeds.values()) if len(feeds) > 1 else next(iter(feeds.values())), training=False)
        got = got if isinstance(got, (list, tuple)) else [got]
        return {n: np.asarray(g) for n, g in zip(outs, got)}
    graph = tf.Graph()
    with graph.as_default():
        if fmt == "metagraph":
            sess = tf.compat.v1.Session(graph=graph)
            saver = tf.compat.v1.train.import_meta_graph(model, clear_devices=True)
            saver.restore(sess, spec["checkpoint"])
        else:
            gd = tf.compat.v1.GraphDef()
            data = Path(model).read_bytes()
            if fmt == "graphdef_text":
                from google.protobuf import text_format
                text_format.Parse(data.decode(), gd)
            else:
                gd.ParseFromString(data)
            tf.compat.v1.import_graph_def(gd, name="")
            sess = tf.compat.v1.Session(graph=graph)
        got = sess.run([o + ":0" for o in outs], {k + ":0": v for k, v in feeds.items()})
    return dict(zip(outs, [np.asarray(g) for g in got]))


def load_keras(path):
    """Keras 3 first; files Keras 3 cannot rebuild go to tf_keras, as a user of the H5 would."""
    try:
        import keras
        return keras.models.load_model(path, compile=False)
    except Exception:  # noqa: BLE001 - any failure: try the Keras 2 loader
        import tf_keras
        return tf_keras.models.load_model(path, compile=False)


def match(reference_out: dict, names: list[str], values: list) -> dict:
    """Converted outputs → reference names: by name (":0" and "Identity"-style suffixes aside),
    the rest by position among the unmatched."""
    got, left = {}, []
    short = {_short(n): v for n, v in zip(names, values)}
    for ref in reference_out:
        if _short(ref) in short:
            got[ref] = short.pop(_short(ref))
        else:
            left.append(ref)
    rest = [v for n, v in zip(names, values) if _short(n) in short]
    for ref, v in zip(left, rest):
        got[ref] = v
    return got


def compare(ref: dict, got: dict) -> tuple[str, float | None, str]:
    worst, notes = 0.0, []
    for name, r in ref.items():
        if name not in got:
            return "mismatch", None, f"output {name} missing"
        r, g = np.asarray(r), np.asarray(got[name])
        if r.size == 0 or g.size == 0:
            return "mismatch", None, f"output {name} is empty {list(g.shape)}"
        if r.shape != g.shape:
            if r.size != g.size:
                return "mismatch", None, f"output {name}: shape {list(g.shape)}, TF {list(r.shape)}"
            g = g.reshape(r.shape)
        r64, g64 = r.astype(np.float64), g.astype(np.float64)
        diff = float(np.max(np.abs(r64 - g64)))
        worst = max(worst, diff)
        bad = ~np.isclose(g64, r64, atol=ATOL, rtol=RTOL)
        if bad.any():
            notes.append(f"{name}: {bad.mean():.1%} out of allclose")
    return ("mismatch" if notes else "ok"), worst, "; ".join(notes)


def run_onnx(path, feeds):
    import onnxruntime as ort

    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    ins = {}
    for k, i in enumerate(s.get_inputs()):
        key = _short(i.name) if _short(i.name) in feeds else list(feeds)[k]
        ins[i.name] = feeds[key]
    names = [o.name for o in s.get_outputs()]
    return names, s.run(names, ins)


def run_openvino(path, feeds):
    import openvino as ov

    core = ov.Core()
    model = core.read_model(path)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ins = {}
    for k, p in enumerate(compiled.inputs):
        names = {_short(n) for n in p.get_names()}
        key = next((n for n in feeds if n in names), list(feeds)[k])
        ins[p] = feeds[key]
    res = compiled.create_infer_request().infer(ins)
    names, values = [], []
    for p in compiled.outputs:
        pn = sorted(p.get_names(), key=len)
        names.append(pn[0] if pn else f"out{len(names)}")
        values.append(np.array(res[p], copy=True))
    return names, values, [set(_short(n) for n in p.get_names()) for p in compiled.outputs]


def run_tflite(path, feeds):
    import tensorflow as tf

    it = tf.lite.Interpreter(model_path=path)
    sigs = it.get_signature_list()
    if sigs:
        key = next(iter(sigs))
        runner = it.get_signature_runner(key)
        det = runner.get_input_details()
        args = {}
        for k, name in enumerate(det):
            src = name if name in feeds else list(feeds)[k]
            args[name] = np.asarray(feeds[src], dtype=det[name]["dtype"])
        res = runner(**args)
        return list(res), list(res.values())
    det = it.get_input_details()
    for d, (name, v) in zip(det, feeds.items()):
        it.resize_tensor_input(d["index"], v.shape)
    it.allocate_tensors()
    for d, v in zip(det, feeds.values()):
        it.set_tensor(d["index"], np.asarray(v, dtype=d["dtype"]))
    it.invoke()
    outs = it.get_output_details()
    return [o["name"] for o in outs], [it.get_tensor(o["index"]) for o in outs]


def run_tfjs(path, feeds, ref_names):
    """The project's Node runner (engine/backends/tfjs_runner.js) on the upstream TF.js model."""
    import subprocess
    import tempfile

    from engine.backends import tfjs

    mj = json.loads((Path(path) / "model.json").read_text())
    layers = mj.get("format") == "layers-model"
    if layers:
        fetch = []
    else:
        sig = (mj.get("signature") or {}).get("outputs") or {}
        nodes = {n["name"] for n in mj["modelTopology"].get("node", [])}
        fetch = [n for n in (_short(r) for r in ref_names) if n in nodes] or list(sig)
    sig_in = (mj.get("signature") or {}).get("inputs") or {}
    nodes = {n["name"] for n in mj.get("modelTopology", {}).get("node", [])} if not layers else set()
    request_inputs = {}
    for k, (name, v) in enumerate(feeds.items()):
        if layers:
            key = name
        elif name in nodes or name in sig_in:
            key = name
        else:
            key = next((s for s, d in sig_in.items() if _short(d.get("name", "")) == name), list(sig_in or [name])[min(k, len(sig_in) - 1)] if sig_in else name)
        request_inputs[key] = tfjs._encode(np.asarray(v))
    if layers:  # layers models are fed by input layer name: use position
        layers_in = mj["modelTopology"].get("model_config", {}).get("config", {}).get("input_layers") or []
        if layers_in and not isinstance(layers_in[0], list):  # Keras 3 writes one input flat: [name, 0, 0]
            layers_in = [layers_in]
        names = [l[0] for l in layers_in]
        if names and len(names) == len(request_inputs):
            request_inputs = dict(zip(names, request_inputs.values()))
    env = {**os.environ, "NODE_PATH": str(tfjs._tfjs_modules())}
    for _ in range(2):  # a one-input layers model names its input layer itself: retry with that name
        with tempfile.TemporaryDirectory() as tmp:
            inp, out = Path(tmp, "in.json"), Path(tmp, "out.json")
            inp.write_text(json.dumps({"inputs": request_inputs, "outputs": fetch}))
            proc = subprocess.run(["node", str(tfjs.RUNNER), str(path), str(inp), str(out)], env=env,
                                  capture_output=True, text=True, timeout=600)
            if proc.returncode == 0:
                res = json.loads(out.read_text())
                break
            lines = proc.stderr.strip().splitlines() or ["node failed"]
            error = next((ln for ln in lines if "Error" in ln), lines[-1])
            wanted = error.split("no value for layers-model inputs ")[-1].strip() if "no value for layers-model inputs" in error else None
            if not (layers and wanted and len(request_inputs) == 1 and wanted not in request_inputs):
                raise RuntimeError(error)
            request_inputs = {wanted: next(iter(request_inputs.values()))}
    return list(res), [tfjs._decode(v) for v in res.values()]


def main(spec_path, result_path):
    spec = json.loads(Path(spec_path).read_text())
    result = {}
    try:
        feeds = feeds_for(spec["inputs"])
        ref = reference(spec, feeds)
        result["reference"] = {"shapes": {k: list(np.shape(v)) for k, v in ref.items()}}
    except Exception as e:  # noqa: BLE001 - the reference itself failing is a result
        result["reference"] = {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"}
        Path(result_path).write_text(json.dumps(result))
        return
    for target, path in spec["targets"].items():
        try:
            if target == "onnx":
                names, values = run_onnx(path, feeds)
            elif target == "openvino":
                names, values, name_sets = run_openvino(path, feeds)
                # OpenVINO may reorder outputs: match on any of each port's names.
                for k, s in enumerate(name_sets):
                    hit = next((r for r in ref if _short(r) in s), None)
                    if hit:
                        names[k] = hit
            elif target == "tflite":
                names, values = run_tflite(path, feeds)
            else:
                names, values = run_tfjs(path, feeds, list(ref))
            status, diff, message = compare(ref, match(ref, names, values))
        except Exception as e:  # noqa: BLE001
            status, diff = "failed", None
            message = f"runtime: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
            if os.environ.get("ZOO_DEBUG"):
                traceback.print_exc()
        result[target] = {"status": status, "diff": diff, "message": message}
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:3])
