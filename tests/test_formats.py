"""Issue 15's inputs and outputs: TF.js layers models and TF1 Hub modules as inputs, the keras target,
and --tensorboard-logdir. Real conversions of the samples sample_models/formats.py builds."""

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLES, assert_clean_error, run_cli
from engine.detect import detect
from engine.inspect import inspect

TFJS_LAYERS, HUB = SAMPLES / "tfjs_layers", SAMPLES / "tf1_hub_module"
ALL = "onnx,tfjs,openvino,tflite"
FEED = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)


def targets_of(out: Path) -> dict:
    return {t["target"]: t for t in json.loads((out / "report.json").read_text())["targets"]}


def assert_verified(target: dict):
    assert target["status"] == "ok", target
    verification = target["verification"]
    assert verification.get("passed") or "skipped" in verification, verification  # tfjs: skipped without Node


# --- TF.js layers models ----------------------------------------------------------------------------


def test_tfjs_layers_model_is_read_without_tensorflow():
    info = inspect(detect(TFJS_LAYERS))
    assert info.format == "tfjs_layers" and info.op_kind == "keras_layer"
    assert [(i.name, i.shape) for i in info.inputs] == [("pixels", [-1, 4])]
    assert [o.name for o in info.outputs] == ["probs"]
    assert info.ops == {"Dense": 2, "InputLayer": 1}


@pytest.fixture(scope="module")
def tfjs_layers_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tfjs_layers") / "out"
    proc = run_cli("convert", TFJS_LAYERS, "--to", ALL + ",keras", "-o", out, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.timeout(600)
def test_tfjs_layers_model_converts_to_every_target_and_verifies(tfjs_layers_run):
    targets = targets_of(tfjs_layers_run)
    assert sorted(targets) == sorted(ALL.split(",") + ["keras"])
    for target in targets.values():
        assert_verified(target)
    assert targets["keras"]["verification"]["passed"]  # run in Keras here, not skippable
    assert (tfjs_layers_run / "keras" / "model.h5").read_bytes()[:4] == b"\x89HDF"


@pytest.mark.timeout(300)
def test_keras_output_computes_what_tensorflowjs_loads(tfjs_layers_run):
    """The .h5 we wrote, loaded in a fresh process, against tensorflowjs' own loader on the original."""
    code = f"""
import numpy as np, tf_keras
from tensorflowjs.converters import keras_tfjs_loader
feed = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
ours = tf_keras.models.load_model({str(tfjs_layers_run / 'keras' / 'model.h5')!r}, compile=False)
theirs = keras_tfjs_loader.load_keras_model({str(TFJS_LAYERS / 'model.json')!r})
print(float(np.abs(ours.predict(feed, verbose=0) - theirs.predict(feed, verbose=0)).max()))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.split()[-1]) < 1e-6


@pytest.mark.upstream
@pytest.mark.timeout(300)
def test_the_printed_tensorflowjs_keras_line_writes_the_same_model(tfjs_layers_run, tmp_path):
    proc = run_cli("convert", TFJS_LAYERS, "--to", "keras", "-o", tmp_path / "up", "--dryrun")
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.splitlines()[1]
    assert "--input_format=tfjs_layers_model --output_format=keras" in line
    bin_dir = str(Path(sys.executable).parent)
    done = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=300,
                          env={"PATH": bin_dir + ":/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    code = f"""
import numpy as np, tf_keras
feed = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
a = tf_keras.models.load_model({str(tmp_path / 'up' / 'keras' / 'model.h5')!r}, compile=False)
b = tf_keras.models.load_model({str(tfjs_layers_run / 'keras' / 'model.h5')!r}, compile=False)
print(float(np.abs(a.predict(feed, verbose=0) - b.predict(feed, verbose=0)).max()))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and float(proc.stdout.split()[-1]) < 1e-6, proc.stderr[-2000:]


def _hostile_copy(tmp_path, edit) -> Path:
    model = tmp_path / "model"
    shutil.copytree(TFJS_LAYERS, model)
    doc = json.loads((model / "model.json").read_text())
    edit(doc, model)
    (model / "model.json").write_text(json.dumps(doc))
    return model


def _paths(value):
    def edit(doc, model):
        doc["weightsManifest"][0]["paths"] = [value]
    return edit


def _outside(doc, model):
    (model.parent / "outside.bin").write_bytes((model / "group1-shard1of1.bin").read_bytes())
    (model / "link.bin").symlink_to(model.parent / "outside.bin")
    doc["weightsManifest"][0]["paths"] = ["link.bin"]


def _short(doc, model):
    shard = model / "group1-shard1of1.bin"
    shard.write_bytes(shard.read_bytes()[:-4])


def _huge(doc, model):
    doc["weightsManifest"][0]["weights"][0]["shape"] = [1 << 30, 1 << 30, 1 << 30]


def _dtype(doc, model):
    doc["weightsManifest"][0]["weights"][0]["dtype"] = "string\x1b[2J"


@pytest.mark.parametrize("edit, needle", [
    (_paths("../tfjs_layers/group1-shard1of1.bin"), "not a plain file name inside"),
    (_paths("/etc/passwd"), "not a plain file name inside"),
    (_paths("missing.bin"), "is missing"),
    (_outside, "not a regular file inside the model's directory"),
    (_short, "shards hold"),
    (_huge, "impossible shape"),
    (_dtype, "\\x1b[2J"),
], ids=["parent", "absolute", "missing", "symlink-out", "truncated", "huge", "escape"])
def test_hostile_model_json_is_refused_in_one_line(tmp_path, edit, needle):
    model = _hostile_copy(tmp_path, edit)
    for proc in (run_cli("inspect", model), run_cli("convert", model, "--to", "onnx", "-o", tmp_path / "o")):
        assert_clean_error(proc)
        assert needle in proc.stderr and "\x1b" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_tfjs_graph_model_is_out_of_scope_in_one_line(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"format": "graph-model", "modelTopology": {"node": []},
                                                      "weightsManifest": []}))
    proc = run_cli("inspect", tmp_path / "model.json")
    assert_clean_error(proc)
    assert "TF.js graph model is out of scope" in proc.stderr


def test_keras_target_is_refused_for_a_graph(tmp_path):
    proc = run_cli("convert", SAMPLES / "frozen_graph.pb", "--to", "onnx,keras", "-o", tmp_path / "o")
    assert_clean_error(proc, "--to keras needs a Keras model")
    assert not (tmp_path / "o").exists()


# --- TF1 Hub modules --------------------------------------------------------------------------------


def test_hub_module_uses_hubs_defaults_and_offers_its_signatures():
    detection = detect(HUB)
    assert detection.format.value == "tf_hub" and "tfhub_module.pb" in detection.reason
    assert detect(HUB / "tfhub_module.pb").format.value == "tf_hub"
    info = inspect(detection)
    assert info.tag == [] and info.signature == "default" and info.signatures == ["default", "double"]
    assert sorted(o.name for o in info.outputs) == ["default", "logits"]
    other = inspect(detection, signature="double", tag="train")
    assert other.tag == ["train"] and [i.name for i in other.inputs] == ["default"]


@pytest.mark.timeout(600)
def test_hub_module_converts_to_every_target_and_dumps_graphs_for_tensorboard(tmp_path):
    logdir = tmp_path / "logs"
    (logdir / "earlier").mkdir(parents=True)
    (logdir / "earlier" / "events.out.tfevents.1.x").write_bytes(b"theirs")
    out = tmp_path / "out"
    proc = run_cli("convert", HUB, "--to", ALL, "-o", out, "--tensorboard-logdir", logdir, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for target in targets_of(out).values():
        assert_verified(target)
    assert (logdir / "earlier" / "events.out.tfevents.1.x").read_bytes() == b"theirs"  # others' runs untouched
    assert not (out / ".tensorboard").exists()
    graphs = _graphs(logdir)
    assert {"Placeholder", "VarHandleOp", "MatMul"} <= graphs["original"]  # as the module holds it
    assert "VarHandleOp" not in graphs["prepared"] and {"Placeholder", "MatMul", "Softmax"} <= graphs["prepared"]


def _graphs(logdir: Path) -> dict:
    """run → op types of the graph TensorBoard reads from it (in a child: TensorBoard's reader imports TF)."""
    code = f"""
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
result = {{}}
for run in ("original", "prepared"):
    acc = EventAccumulator({str(logdir)!r} + "/" + run); acc.Reload()
    result[run] = sorted({{n.op for n in acc.Graph().node}})
print(json.dumps(result))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {k: set(v) for k, v in json.loads(proc.stdout.splitlines()[-1]).items()}


@pytest.mark.timeout(600)
def test_keras_v3_file_and_tensorboard_from_a_layers_model(tmp_path):
    """--keras-format keras writes model.keras; the TensorBoard 'original' is the traced Keras call."""
    logdir, out = tmp_path / "logs", tmp_path / "out"
    proc = run_cli("convert", TFJS_LAYERS, "--to", "keras", "--keras-format", "keras", "-o", out,
                   "--tensorboard-logdir", logdir, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert_verified(targets_of(out)["keras"])
    assert (out / "keras" / "model.keras").read_bytes()[:4] == b"PK\x03\x04"
    graphs = _graphs(logdir)
    assert "ReadVariableOp" in graphs["original"] and "ReadVariableOp" not in graphs["prepared"]


def test_tensorboard_logdir_that_cannot_be_used_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    for logdir, needle in ((tmp_path / "o" / "tb", "inside -o"), (tmp_path / "file" / "tb", "is a file"),
                           (HUB / "tb", "the model")):
        proc = run_cli("convert", HUB, "--to", "onnx", "-o", tmp_path / "o", "--tensorboard-logdir", logdir, "--dryrun")
        assert_clean_error(proc)
        assert needle in proc.stderr
    proc = run_cli("convert", HUB, "--to", "onnx", "-o", tmp_path / "o", "--tensorboard-logdir", tmp_path / "tb", "--dryrun")
    assert proc.returncode == 0 and "--tensorboard-logdir" in proc.stdout
    assert not (tmp_path / "tb").exists()


def test_hub_urls_and_handles_are_refused_with_how_to_download():
    for url in ("https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/classification/5",
                "https://www.kaggle.com/models/google/mobilenet-v2/tensorFlow2/100-224-classification",
                "tfhub.dev/google/universal-sentence-encoder/4"):
        proc = run_cli("inspect", url)
        assert_clean_error(proc)
        assert "download it first" in proc.stderr and "tf-hub-format=compressed" in proc.stderr
        assert "https://" in proc.stderr and "https:/t" not in proc.stderr.replace("https://", "")


def test_damaged_hub_marker_and_risky_ops_are_refused(tmp_path):
    module = tmp_path / "module"
    shutil.copytree(HUB, module)
    (module / "tfhub_module.pb").write_bytes(b"\x08\x07garbage")
    assert_clean_error(run_cli("inspect", module), "not a TF Hub ModuleDef")

    from engine import protos

    (module / "tfhub_module.pb").write_bytes(b"\x08\x01")
    message = protos.saved_model_class()()
    message.ParseFromString((module / "saved_model.pb").read_bytes())
    for meta in message.meta_graphs:  # the same safety scan as any SavedModel
        node = meta.graph_def.node.add(name="leak", op="WriteFile")
        node.input.extend(["x", "x"])
    (module / "saved_model.pb").write_bytes(message.SerializeToString())
    proc = run_cli("convert", module, "--to", "onnx", "-o", tmp_path / "o", "--dryrun")
    assert_clean_error(proc, "--trust-model")
    assert "WriteFile" in proc.stderr


def test_wizard_offers_keras_only_for_keras_shaped_models():
    from wizard.steps import offered_targets

    assert "keras" in offered_targets(inspect(detect(TFJS_LAYERS)))
    assert "keras" not in offered_targets(inspect(detect(HUB)))


def test_wizard_review_asks_for_the_tensorboard_logdir(tmp_path):
    from wizard.steps import Answers, questions

    answers = Answers()
    answers.apply("model", str(HUB))
    answers.output_dir = str(tmp_path / "o")
    question = next(q for q in questions("review", answers) if q.key == "tensorboard_logdir")
    assert question.validate("") is None and "inside -o" in question.validate(str(tmp_path / "o" / "tb"))
    answers.tensorboard_logdir = str(tmp_path / "tb")
    assert shlex.split(answers.options().command())[-2:] == ["--tensorboard-logdir", str(tmp_path / "tb")]


def test_wizard_drops_keras_when_the_next_model_cannot_take_it():
    from wizard.steps import Answers

    answers = Answers()
    answers.apply("model", str(TFJS_LAYERS))
    answers.targets = ["tflite", "keras"]
    answers.apply("model", str(SAMPLES / "frozen_graph.pb"))
    assert answers.targets == ["tflite"]
