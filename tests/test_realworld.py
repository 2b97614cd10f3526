"""Issue 13's failure classes 2, 3, 4 and 6, on the small samples sample_models/build.py makes of
each (realworld/, manifest entries with `failure_class`). In-process: TensorFlow is imported once."""

import json

import pytest

from conftest import SAMPLES, run_cli
from engine.cli import build_parser, options_from_args
from engine.convert import convert
from engine.plan import upstream_lines
from engine.detect import detect
from engine.errors import UserError
from engine.inspect import inspect
from engine.options import ConversionOptions

TARGETS = ("onnx", "openvino", "tflite")  # TF.js needs Node; its verifier is the same code path
RW = SAMPLES / "realworld"


def run(tmp_path, model, targets=TARGETS, **kw):
    tmp_path.mkdir(parents=True, exist_ok=True)
    options = ConversionOptions(model=str(RW / model), targets=targets, output_dir=str(tmp_path / "out"), **kw)
    report = convert(options, emit=lambda *a, **k: None)
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    return {t["target"]: t for t in doc["targets"]}, report


# --- class 2: the verification rule and its inputs ---------------------------------------------


def test_large_activations_pass_allclose_where_abs_only_failed(tmp_path):
    targets, report = run(tmp_path, "wide_activations.pb")
    assert report.exit_code == 0, targets
    diffs = [t["verification"]["max_abs_diff"] for t in targets.values()]
    assert max(diffs) > 1e-4  # an abs-only 1e-4 bound would have failed these
    for t in targets.values():
        v = t["verification"]
        assert v["atol"] == v["rtol"] == 1e-4 and v["outputs"]["activations"]["out_of_bound"] == 0


def test_empty_outputs_grow_the_dynamic_dims(tmp_path):
    targets, report = run(tmp_path, "crop.pb")
    assert report.exit_code == 0, targets
    for t in targets.values():
        shape = t["verification"]["outputs"]["cropped"]["shape"]
        assert shape[0] == 2 and shape[1] > 0  # 201+ positions in, so something comes out


def test_empty_output_at_fixed_sizes_fails_naming_input(tmp_path):
    targets, report = run(tmp_path, "crop.pb", targets=("onnx",), inputs=(("signal", (2, 50)),))
    v = targets["onnx"]["verification"]
    assert report.exit_code == 3 and not v["passed"]
    assert "'cropped' is empty" in v["error"] and "--input" in v["error"]


@pytest.mark.parametrize("model", ["embedding.pb", "keras_embedding.keras"])
def test_embedding_indices_stay_inside_the_table(tmp_path, model):
    targets, report = run(tmp_path, model)
    assert report.exit_code == 0, targets
    assert all(t["verification"]["passed"] for t in targets.values())


def test_keep_prob_is_fed_one_so_the_reference_is_deterministic(tmp_path):
    targets, report = run(tmp_path, "dropout.pb")
    assert report.exit_code == 0, targets
    assert all(t["verification"]["passed"] for t in targets.values())
    assert [i["name"] for i in report.to_json()["model"]["inputs"]] == ["x", "keep_prob"]  # the model's own


def test_random_reference_is_detected_and_freeze_pins_it(tmp_path):
    """A dropout switch whose name says nothing gets random values: two runs differ, and --freeze pins it."""
    import tensorflow as tf

    v1 = tf.compat.v1
    with tf.Graph().as_default() as g:
        x = v1.placeholder(tf.float32, [None, 8], name="x")
        p = v1.placeholder(tf.float32, [], name="p")
        tf.identity(v1.nn.dropout(tf.nn.relu(x - 0.5), keep_prob=p), name="features")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "p_dropout.pb").write_bytes(g.as_graph_def().SerializeToString())
    model = tmp_path / "m" / "p_dropout.pb"
    options = ConversionOptions(model=str(model), targets=("onnx",), output_dir=str(tmp_path / "a"))
    report = convert(options, emit=lambda *a, **k: None)
    v = report.targets[0].verification
    assert report.exit_code == 3 and "differs between two runs" in v["error"]
    assert "--freeze p=VALUE" in v["error"] and "use_default" not in v["error"]
    options = ConversionOptions(model=str(model), targets=("onnx",), output_dir=str(tmp_path / "b"), freeze=(("p", "1.0"),))
    report = convert(options, emit=lambda *a, **k: None)
    assert report.exit_code == 0 and report.targets[0].verification["passed"]


def test_freeze_flag_parses_renders_and_has_no_upstream_equivalent():
    args = build_parser().parse_args(["convert", str(RW / "dropout.pb"), "--to", "onnx,openvino", "-o", "o",
                                      "--freeze", "keep_prob:0=1"])
    options = options_from_args(args)
    assert options.freeze == (("keep_prob", "1"),) and "--freeze keep_prob=1" in options.command()
    info = inspect(detect(options.model))
    assert all(line.startswith("# ") for line in upstream_lines(options, info))
    for bad in ("keep_prob", "keep_prob=abc"):
        with pytest.raises(UserError, match="--freeze"):
            options_from_args(build_parser().parse_args(["convert", "m", "--to", "onnx", "-o", "o", "--freeze", bad]))


# --- class 3: OpenVINO outputs by name -----------------------------------------------------------


def test_openvino_outputs_are_matched_by_name(tmp_path):
    """ov.convert_model returns detection_classes before detection_scores, whatever output= says."""
    targets, report = run(tmp_path, "detection.pb", targets=("openvino",))
    v = targets["openvino"]["verification"]
    assert v["passed"] and set(v["outputs"]) == {"detection_scores", "detection_classes", "num_detections"}, v
    assert v["max_abs_diff"] < 1e-6


# --- class 4: a training MetaGraph's interface --------------------------------------------------


def test_training_metagraph_interface_agrees_with_summarize_graph():
    info = inspect(detect(RW / "training" / "model.meta"))
    assert [o.name for o in info.outputs] == ["probs", "aux"]  # no dropout/switch_t|f, no train/gradients/*
    assert "labels" not in [i.name for i in info.inputs]


def test_training_metagraph_converts_what_the_outputs_need(tmp_path):
    """learning_rate is not in the checkpoint (not needed), iterator_handle feeds only 'aux' (cut away),
    'scale' defaults to a computed value (no input, no tf2onnx use_default needed)."""
    targets, report = run(tmp_path, "training/model.meta", outputs=("probs",))
    assert report.exit_code == 0, targets
    assert all(t["verification"]["passed"] for t in targets.values())


def test_dryrun_upstream_lines_name_only_the_inputs_the_outputs_need(tmp_path):
    """--output probs cuts 'aux' away, and with it the only use of iterator_handle (and of 'scale's default)."""
    proc = run_cli("convert", RW / "training" / "model.meta", "--to", "onnx,openvino", "-o", tmp_path / "o",
                   "--output", "probs", "--dryrun")
    assert proc.returncode == 0, proc.stderr
    ours, onnx, openvino = proc.stdout.strip().splitlines()
    assert "--inputs x:0 " in onnx and "'x:0[?,8]'" in openvino
    assert "iterator_handle" not in onnx + openvino
    proc = run_cli("convert", RW / "training" / "model.meta", "--to", "onnx", "-o", tmp_path / "o",
                   "--output", "aux", "--dryrun")
    assert "--inputs iterator_handle:0 --rename-inputs iterator_handle " in proc.stdout.splitlines()[1]


# --- class 6: one line with TensorFlow's reason ---------------------------------------------------


def test_tensorflow_failure_keeps_its_reason(tmp_path):
    proc = run_cli("convert", RW / "embedding.pb", "--to", "onnx", "-o", tmp_path / "o",
                   "--freeze", "tokens=[7,7,7,7,7,7]", timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]  # after the progress lines
    assert line.startswith("tfwizard: error: TensorFlow cannot run the model") and "is not in [0, 5)" in line
    assert "--freeze" in line and "Graph execution error" not in line


def test_stale_colocation_hint_does_not_stop_the_conversion(tmp_path):
    """TensorFlow (and tf2onnx) refuse to import a node colocated with a node the graph lacks; the
    hint only places devices, so it is dropped. Before, the error blamed the input shapes."""
    targets, report = run(tmp_path, "colocated.pb")
    assert report.exit_code == 0, targets
