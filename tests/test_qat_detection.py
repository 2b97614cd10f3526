"""Quantization-aware graphs and TF Object Detection API models (issue 15, items 6 and 7).

The samples (sample_models/qat_frozen.pb, sample_models/ssd_tiny/) are converted to every target
once per module and verified against TensorFlow; what each target keeps is read from its files.
"""

import json

import numpy as np
import pytest

from conftest import SAMPLES, run_cli
from engine.backends import FLOAT32_TOLERANCE, TARGETS, Tolerance

GRAPH_TARGETS = tuple(t for t in TARGETS if t != "keras")  # the keras target takes Keras-shaped inputs only
from engine.convert import convert
from engine.detect import detect
from engine.inspect import inspect
from engine.options import ConversionOptions
from engine.verify import compare

SSD = SAMPLES / "ssd_tiny"
DETECTION_OUTPUTS = ["detection_boxes", "detection_scores", "detection_classes", "num_detections"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    cache = {}

    def get(model):
        if model not in cache:
            out = tmp_path_factory.mktemp("qatdet") / "out"
            report = convert(ConversionOptions(model=str(SAMPLES / model), targets=GRAPH_TARGETS, output_dir=str(out)),
                             emit=lambda *a, **k: None)
            cache[model] = {t.target: t for t in report.targets}, out
        return cache[model]

    return get


# --- quantization-aware training -----------------------------------------------------------------

@pytest.mark.timeout(600)
def test_qat_onnx_keeps_quantize_dequantize(converted):
    import onnx

    results, out = converted("qat_frozen.pb")
    assert results["onnx"].status == "ok", results["onnx"].message
    assert results["onnx"].verification["passed"]
    ops = [n.op_type for n in onnx.load(out / "onnx" / "model.onnx").graph.node]
    assert ops.count("QuantizeLinear") >= 3 and ops.count("DequantizeLinear") >= 3, ops  # input, conv act, output
    assert "FakeQuantWithMinMaxVars" not in ops


@pytest.mark.timeout(600)
def test_qat_openvino_keeps_fake_quantize(converted):
    results, out = converted("qat_frozen.pb")
    assert results["openvino"].status == "ok", results["openvino"].message
    assert (out / "openvino" / "model.xml").read_text().count('type="FakeQuantize"') >= 3


@pytest.mark.timeout(600)
def test_qat_tflite_is_int8_and_judged_in_output_levels(converted):
    from ai_edge_litert.interpreter import Interpreter

    results, out = converted("qat_frozen.pb")
    result = results["tflite"]
    assert result.status == "ok", result.message
    interpreter = Interpreter(model_path=str(out / "tflite" / "model.tflite"))
    ops = {o["op_name"] for o in interpreter._get_ops_details()}
    assert {"QUANTIZE", "CONV_2D", "FULLY_CONNECTED", "DEQUANTIZE"} <= ops, ops
    int8 = [d["name"] for d in interpreter.get_tensor_details() if d["dtype"] == np.int8]
    assert len(int8) >= 4, int8  # weights and activations, not only a float model with QDQ pairs
    v = result.verification
    step = 8 / 255  # the output's FakeQuant range [-4, 4] in 8 bits
    assert v["atol"] == pytest.approx(2 * step) and not v["atol_scaled"]
    assert v["passed"] and v["max_abs_diff"] <= 2 * step + 1e-6


@pytest.mark.timeout(600)
def test_qat_tfjs_fails_in_one_line_naming_the_op(converted):
    results, _ = converted("qat_frozen.pb")
    assert results["tfjs"].status == "unsupported"
    assert "FakeQuantWithMinMaxVarsPerChannel" in results["tfjs"].message and "\n" not in results["tfjs"].message


@pytest.fixture(scope="module")
def per_channel_graph(tmp_path_factory):
    """Per-channel fake quantization of an activation (narrow range): TensorFlow's optimiser cannot
    fold it away as it does for constant weights, so the ONNX handler itself is what converts it."""
    from engine.prepare import import_tensorflow

    tf = import_tensorflow()
    path = tmp_path_factory.mktemp("perchannel") / "per_channel.pb"
    with tf.Graph().as_default() as g:
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        y = tf.quantization.fake_quant_with_min_max_vars_per_channel(
            x * 3.0 - 1.0, tf.constant([-1.0, -2.0, 0.1, -0.5]), tf.constant([1.0, 2.0, 3.0, 0.5]), narrow_range=True)
        tf.identity(y, name="out")
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


@pytest.mark.timeout(300)
def test_per_channel_fake_quant_becomes_qdq_with_an_axis(per_channel_graph, tmp_path):
    import onnx

    out = tmp_path / "out"
    report = convert(ConversionOptions(model=str(per_channel_graph), targets=("onnx",), output_dir=str(out), opset=13),
                     emit=lambda *a, **k: None)
    [result] = report.targets
    assert result.status == "ok" and result.verification["passed"], (result.message, result.verification)
    assert result.verification["max_abs_diff"] <= 1e-6  # TensorFlow's nudged levels, clipped to the narrow range
    quantize = [n for n in onnx.load(out / "onnx" / "model.onnx").graph.node if n.op_type == "QuantizeLinear"]
    assert [a.i for n in quantize for a in n.attribute if a.name == "axis"] == [1]


def test_per_channel_fake_quant_below_opset_13_is_refused(per_channel_graph, tmp_path):
    from conftest import assert_clean_error

    proc = run_cli("convert", per_channel_graph, "--to", "onnx", "--opset", "11", "-o", tmp_path / "o", "--dryrun")
    assert_clean_error(proc, "FakeQuantWithMinMaxVarsPerChannel", "--opset 13")


def test_qat_tolerance_is_two_output_levels():
    from engine.fake_quant import output_step, tolerance

    detection = detect(SAMPLES / "qat_frozen.pb")
    graph = detection.parsed
    assert output_step(graph, "output") == pytest.approx(8 / 255)
    assert tolerance(FLOAT32_TOLERANCE, graph, ["output"]).atol == pytest.approx(2 * 8 / 255)
    plain = detect(SAMPLES / "frozen_graph.pb").parsed
    assert tolerance(FLOAT32_TOLERANCE, plain, ["output"]) == FLOAT32_TOLERANCE


# --- object detection ----------------------------------------------------------------------------

@pytest.mark.parametrize("model, image", [("ssd_tiny/frozen_inference_graph.pb", "image_tensor"),
                                          ("ssd_tiny/saved_model", "input_tensor")])
def test_inspect_recognises_a_detector(model, image):
    info = inspect(detect(SAMPLES / model))
    assert sorted(o.name for o in info.outputs) == sorted(DETECTION_OUTPUTS)
    [i] = info.inputs
    assert (i.name, i.dtype, i.shape) == (image, "uint8", [-1, 32, 32, 3])
    assert "pipeline.config" in i.note
    assert any("Object Detection API" in w for w in info.warnings)


def test_without_pipeline_config_the_image_stays_dynamic(tmp_path):
    (tmp_path / "frozen_inference_graph.pb").write_bytes((SSD / "frozen_inference_graph.pb").read_bytes())
    info = inspect(detect(tmp_path / "frozen_inference_graph.pb"))
    assert info.inputs[0].shape == [-1, -1, -1, 3]
    assert sorted(o.name for o in info.outputs) == sorted(DETECTION_OUTPUTS)


def test_detector_outputs_win_over_dangling_nodes(tmp_path):
    """Real OD API exports keep dangling nodes (a loop's leftover TensorArray size, casts): the plain
    summarize_graph rule would list them as outputs; the detector's named outputs win."""
    graph = detect(SSD / "frozen_inference_graph.pb").parsed
    leftover = graph.node.add(name="Postprocessor/ToFloat", op="Cast", input=["num_detections"])
    leftover.attr["SrcT"].type, leftover.attr["DstT"].type = 1, 1
    (tmp_path / "frozen_inference_graph.pb").write_bytes(graph.SerializeToString())
    (tmp_path / "pipeline.config").write_text((SSD / "pipeline.config").read_text())
    info = inspect(detect(tmp_path / "frozen_inference_graph.pb"))
    assert [o.name for o in info.outputs] == DETECTION_OUTPUTS
    assert info.inputs[0].shape == [-1, 32, 32, 3]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("model", ["ssd_tiny/frozen_inference_graph.pb", "ssd_tiny/saved_model"])
@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_detector_converts_and_detections_match(converted, model, target):
    results, _ = converted(model)
    result = results[target]
    assert result.status == "ok", result.message
    v = result.verification
    assert v["passed"], v
    assert v["detections"] and all(d["count"] == d["target_count"] == d["matched"] > 0 for d in v["detections"])
    assert v["outputs"]["detection_boxes"]["compared"] == "matched detections"


@pytest.mark.timeout(600)
def test_detector_frozen_graph_to_tflite_with_flex(converted):
    results, _ = converted("ssd_tiny/frozen_inference_graph.pb")
    result = results["tflite"]
    assert result.status == "ok", result.message
    assert "select TF ops" in result.strategy  # NonMaxSuppressionV5 and TF1 TensorArrays are not builtins
    assert result.verification["passed"] and result.verification["detections"][0]["matched"] > 0


@pytest.mark.timeout(600)
def test_detector_dryrun_gives_ovc_the_config_size():
    proc = run_cli("convert", SSD / "frozen_inference_graph.pb", "--to", "openvino", "-o", "o", "--dryrun")
    assert proc.returncode == 0, proc.stderr
    assert "image_tensor:0[?,32,32,3]" in proc.stdout


@pytest.mark.timeout(600)
def test_detector_on_tfjs_fails_in_one_line_saying_what_to_do(converted):
    results, _ = converted("ssd_tiny/frozen_inference_graph.pb")
    result = results["tfjs"]
    if "skipped" in (result.verification or {}):
        pytest.skip(result.verification["skipped"])
    assert result.status == "mismatch"
    error = result.verification["error"]
    assert "\n" not in error and "control flow" in error and "ONNX or OpenVINO" in error, error


# --- the detection comparison itself (engine.detections) -----------------------------------------

def _detections(boxes, scores, classes, slots=4):
    n = len(scores)
    pad = lambda a, shape: np.concatenate([np.asarray(a, np.float32).reshape(n, *shape),
                                           np.zeros((slots - n, *shape), np.float32)])[None]
    return {"detection_boxes": pad(boxes, (4,)), "detection_scores": pad(scores, ()),
            "detection_classes": pad(classes, ()), "num_detections": np.array([n], np.float32)}


REF = _detections([[0, 0, .5, .5], [.5, .5, 1, 1], [.2, .2, .6, .6]], [.9, .8, .8], [1, 2, 1])


def test_equal_score_detections_in_another_order_match():
    swapped = _detections([[0, 0, .5, .5], [.2, .2, .6, .6], [.5, .5, 1, 1]], [.9, .8, .8], [1, 1, 2])
    swapped["detection_boxes"][0, 3] = 7  # padding past num_detections is not compared
    v = compare(REF, swapped, FLOAT32_TOLERANCE)
    assert v["passed"], v
    assert v["detections"] == [{"count": 3, "target_count": 3, "matched": 3}]


def test_a_wrong_class_count_or_box_fails():
    wrong_class = _detections(REF["detection_boxes"][0, :3], [.9, .8, .8], [1, 2, 2])
    assert "no match" in compare(REF, wrong_class, FLOAT32_TOLERANCE)["error"]
    fewer = _detections(REF["detection_boxes"][0, :2], [.9, .8], [1, 2])
    assert "2 detections, TensorFlow finds 3" in compare(REF, fewer, FLOAT32_TOLERANCE)["error"]
    moved = {**REF, "detection_boxes": REF["detection_boxes"] + np.float32(0.01)}
    v = compare(REF, moved, FLOAT32_TOLERANCE)
    assert not v["passed"] and "detection_boxes" in v["error"]
    assert compare(REF, moved, Tolerance(0.02, 0))["passed"]  # within a looser tolerance


def test_pipeline_config_resizers():
    from engine.detections import input_size

    fixed = "model { ssd { image_resizer { fixed_shape_resizer { height: 300 width: 320 } } } }"
    padded = ("model { faster_rcnn { image_resizer { keep_aspect_ratio_resizer { min_dimension: 600\n"
              "  max_dimension: 1024 pad_to_max_dimension: true } } } }")
    unpadded = "model { faster_rcnn { image_resizer { keep_aspect_ratio_resizer { min_dimension: 600 max_dimension: 1024 } } } }"
    assert input_size(fixed) == (300, 320)
    assert input_size(padded) == (1024, 1024)
    assert input_size(unpadded) is None  # the size depends on each image: the input stays dynamic
    assert input_size("model { ssd { num_classes: 3 } }") is None
