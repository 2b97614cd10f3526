"""The upstream commands `tfwizard convert --dryrun` prints run as printed, and compute what ours do.

For each case, `tfwizard convert MODEL ... --dryrun` (a subprocess; no TensorFlow) prints our command
and one line per target. Every upstream line is run by a shell, as a user pasting it would, with
the venv's bin first on PATH; all of them at once in a few workers, since each upstream CLI spends
seconds importing TensorFlow. Meanwhile our own conversion runs in-process from the printed project
command. Both results are then loaded the way verification loads ours (onnxruntime; OpenVINO CPU at
f32; TF.js in Node; the TFLite interpreter) and fed the same seeded inputs.
"""

import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SAMPLES, run_cli
from engine.backends import Prepared, get
from engine.cli import build_parser, options_from_args
from engine.convert import convert
from engine.interface import final_inputs, final_outputs
from engine.plan import plan
from engine.verify import make_feeds

pytestmark = pytest.mark.upstream

# id: (sample, extra options, targets). Together: every input form each upstream takes directly
# (frozen graph, TF2 SavedModel, Keras 2 .h5, Keras 3 .keras, MetaGraph), shape flags, NCHW, and
# the quantization flags whose results the upstream and we compute alike. A handful only: each
# upstream run costs ~4 s of CPU, most of it importing TensorFlow. (tflite_convert's plain V2
# SavedModel path is run in-process in test_backend_tflite.)
CASES = {
    "frozen_batch2": ("frozen_graph.pb", ["--batch", "2"], "onnx,tfjs,openvino,tflite"),
    "saved_model_shaped_nchw_quantized": (
        "image_classifier", ["--input", "image[1,32,32,3]", "--inputs-as-nchw", "image", "--quantize", "tfjs:uint8",
                             "--quantize", "openvino:fp16", "--quantize", "tflite:float16"], "onnx,tfjs,openvino,tflite"),
    "keras2_h5": ("keras2_functional.h5", [], "onnx,tfjs,tflite"),
    "keras3_sequential": ("keras_sequential.keras", [], "onnx"),
    "metagraph": ("metagraph/model.meta", [], "onnx,openvino"),
    # Recurrent models (issue 13), on the targets whose upstream converts them: tflite_convert fails on
    # all three (TensorList lowering; TensorArrayV3 not a builtin), ovc takes no Keras file.
    "keras2_lstm": ("keras2_lstm.h5", [], "onnx,tfjs"),
    "tf1_gru_frozen": ("tf1_gru_frozen.pb", [], "onnx,tfjs,openvino"),
    "tf1_lstm_metagraph": ("tf1_lstm_metagraph/model.meta", [], "onnx,openvino"),
    # A TF1 Hub module (issue 15): tensorflowjs_converter --input_format=tf_hub fails (tensorflow_hub 0.16
    # has no hub.Module); tf2onnx takes it as a SavedModel with the empty tag set.
    "tf1_hub_module": ("tf1_hub_module", [], "onnx"),
}
# Ours and the upstream's model come from the same TensorFlow graph through the same converter (or,
# for TFLite and Keras, the same converter on an equivalent function): only op order and fusion differ.
TOLERANCE = 1e-5


def dryrun(sample, extra, targets, out):
    proc = run_cli("convert", SAMPLES / sample, "--to", targets, "-o", out, "--no-verify", *extra, "--dryrun")
    assert proc.returncode == 0, proc.stderr
    ours, *lines = proc.stdout.strip().splitlines()
    return ours, dict(zip(targets.split(","), lines))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """{case: (prepared-like interface, our OUTDIR, upstream OUTDIR, {target: printed line})}."""
    root = tmp_path_factory.mktemp("upstream")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    cases, jobs = {}, []
    for case, (sample, extra, targets) in CASES.items():
        (root / case).mkdir()
        ours_cmd, lines = dryrun(sample, extra, targets, root / case / "upstream")
        cases[case] = (ours_cmd, lines)
        jobs += [(case, target, line) for target, line in lines.items() if not line.startswith("#")]

    def run(job):
        case, target, line = job
        return job, subprocess.run(["bash", "-c", line], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)

    with ThreadPoolExecutor(max_workers=3) as pool:
        pending = pool.map(run, jobs)
        ours = {}
        for case, (ours_cmd, lines) in cases.items():  # in-process while the upstream CLIs run
            options = options_from_args(build_parser().parse_args(shlex.split(ours_cmd)[1:]))
            options = options.replace(output_dir=str(root / case / "ours"))
            report = convert(options, emit=lambda *a, **k: None)
            assert report.exit_code == 0, [(t.target, t.status, t.message) for t in report.targets]
            _, info = plan(options)
            ours[case] = Prepared(graph_def=None, graph_path=None, inputs=final_inputs(info, options),
                                  outputs=final_outputs(info, options))
        failed = [(job, proc.stderr[-1500:]) for job, proc in pending if proc.returncode != 0]
    assert not failed, failed
    return {case: (ours[case], root / case / "ours", root / case / "upstream", lines)
            for case, (_, lines) in cases.items()}


def test_dryrun_names_what_no_upstream_can_do(tmp_path):
    _, lines = dryrun("image_classifier", ["--preset", "mobilenet"], "onnx,tfjs,openvino,tflite", tmp_path)
    assert all(line.startswith("# ") and "through TensorFlow" in line for line in lines.values()), lines
    _, lines = dryrun("keras3_functional.h5", [], "tfjs", tmp_path)  # tensorflowjs_converter fails on Keras 3 .h5
    assert lines["tfjs"].startswith("# tfjs: ")


@pytest.mark.parametrize("case, target", [(c, t) for c, (_, _, targets) in CASES.items() for t in targets.split(",")])
def test_printed_upstream_command_matches_ours(results, case, target):
    interface, ours_dir, upstream_dir, lines = results[case]
    if lines[target].startswith("#"):
        pytest.fail(f"no upstream command printed: {lines[target]}")
    if target == "tfjs" and shutil.which("node") is None:
        pytest.skip("node not installed: TF.js models cannot be run")
    backend = get(target)
    feeds = make_feeds(interface.inputs)
    mine = backend.load(ours_dir / target, interface)(feeds)
    theirs = _load_upstream(target, upstream_dir / target, interface, case)(feeds)
    for name in interface.outputs:
        assert np.asarray(theirs[name]).shape == np.asarray(mine[name]).shape, name
        assert np.max(np.abs(np.asarray(theirs[name], np.float64) - mine[name])) <= TOLERANCE, (name, lines[target])


def _load_upstream(target, outdir, interface, case):
    backend = get(target)
    if target == "onnx" and "--inputs-as-nchw" in CASES[case][1]:
        # The upstream file does not record which inputs tf2onnx transposed; tell load() as ours does.
        import onnx

        from engine.backends.onnx import NCHW_KEY

        model = onnx.load(outdir / "model.onnx")
        model.metadata_props.add(key=NCHW_KEY, value="image")
        onnx.save(model, outdir / "model.onnx")
    if target == "tflite":
        return _tflite_runner(outdir / "model.tflite", interface)
    if target == "openvino":
        return _openvino_runner(outdir, interface)
    return backend.load(outdir, interface)


def _openvino_runner(outdir, interface):
    """ovc names a frozen graph's (or MetaGraph's) tensors 'node:0' and has no way to rename them; ours
    carry the plain names. Same numbers, so feed and fetch under whichever name the IR has."""
    import openvino as ov

    model = ov.Core().read_model(outdir / "model.xml")
    known = {n for port in [*model.inputs, *model.outputs] for n in port.get_names()}
    name = {n: n if n in known else f"{n}:0" for n in [*(i.name for i in interface.inputs), *interface.outputs]}
    run = get("openvino").load(outdir, Prepared(
        graph_def=None, graph_path=None, inputs=[replace(i, name=name[i.name]) for i in interface.inputs],
        outputs=[name[o] for o in interface.outputs]))

    def run_renamed(feeds):
        result = run({name[k]: v for k, v in feeds.items()})
        return {o: result[name[o]] for o in interface.outputs}

    return run_renamed


def _tflite_runner(path, interface):
    """tflite_convert's V1 path (graph defs; shapes or quantization) writes no signature: match by
    position, in --input_arrays / --output_arrays order (ours: the interface's order)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    if interpreter.get_signature_list():
        return get("tflite").load(path.parent, interface)
    interpreter.allocate_tensors()
    ins, outs = interpreter.get_input_details(), interpreter.get_output_details()
    assert len(ins) == len(interface.inputs) and len(outs) == len(interface.outputs)

    def run(feeds):
        for detail, i in zip(ins, interface.inputs):
            interpreter.set_tensor(detail["index"], feeds[i.name])
        interpreter.invoke()
        return {name: interpreter.get_tensor(d["index"]) for d, name in zip(outs, interface.outputs)}

    return run
