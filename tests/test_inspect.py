"""inspect gives the right format, inputs, outputs and ops on every sample model.

The expectations come from sample_models/manifest.json, written by the builder from what it built
and checked against TensorFlow while building; inspect itself never imports TensorFlow.
"""

import json

import pytest

from conftest import MANIFEST, SAMPLES, run_cli
from engine.detect import detect
from engine.inspect import SCHEMA, inspect

MODELS = [m for m in MANIFEST if m["format"] != "keras_weights_only"]


def spec(tensors):
    return sorted((t["name"], t.get("dtype"), t.get("shape")) for t in tensors)


@pytest.mark.parametrize("entry", MODELS, ids=[m["path"] for m in MODELS])
def test_inspect_matches_the_model(entry):
    detection = detect(SAMPLES / entry["path"])
    info = inspect(detection)
    assert info.format == entry["format"], detection.reason
    assert detection.reason and "\n" not in detection.reason
    assert spec(vars(i) for i in info.inputs) == spec(entry["inputs"])
    assert sorted(o.name for o in info.outputs) == sorted(o["name"] for o in entry["outputs"])
    if "signatures" in entry:
        assert info.signatures == sorted(entry["signatures"])
        assert "__saved_model_init_op" not in info.signatures
    if "tags" in entry:  # the tag set used by default
        assert sorted(info.tag) == sorted(entry["tags"])
    if "tag_sets" in entry:
        assert sorted(map(sorted, info.tags)) == sorted(map(sorted, entry["tag_sets"]))
    assert info.ops and all(n > 0 for n in info.ops.values())


@pytest.mark.parametrize("entry", MODELS, ids=[m["path"] for m in MODELS])
def test_cli_json_follows_the_schema(entry):
    proc = run_cli("inspect", SAMPLES / entry["path"], "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == SCHEMA
    assert doc["format"] == entry["format"]
    for key in ("path", "format_title", "reason", "producer", "inputs", "outputs", "ops", "op_kind", "warnings"):
        assert key in doc
    for tensor in doc["inputs"] + doc["outputs"]:
        assert set(tensor) == {"name", "dtype", "shape", "tensor", "note"}
    human = run_cli("inspect", SAMPLES / entry["path"])
    assert human.returncode == 0 and entry["inputs"][0]["name"] in human.stdout


def test_saved_model_signature_and_tag_choice():
    other = inspect(detect(SAMPLES / "saved_model_tf2"), signature="scale")
    assert other.signature == "scale"
    assert sorted(i.name for i in other.inputs) == ["factor", "x"]
    assert [o.name for o in other.outputs] == ["scaled"]
    assert other.inputs[0].tensor.endswith(":0")
    gpu = inspect(detect(SAMPLES / "saved_model_tf1"), tag="serve,gpu")
    assert gpu.tag == ["serve", "gpu"] or sorted(gpu.tag) == ["gpu", "serve"]


def test_saved_model_pb_path_means_its_directory():
    assert detect(SAMPLES / "saved_model_tf2" / "saved_model.pb").path == SAMPLES / "saved_model_tf2"


def test_metagraph_training_noise_is_filtered():
    info = inspect(detect(SAMPLES / "metagraph" / "model.meta"))
    assert [o.name for o in info.outputs] == ["probs"]
    flagged = {i.name: i.note for i in info.inputs}
    assert "labels" not in flagged  # consumed only by the loss → training-only
    assert "is_training" in flagged and "False" in flagged["is_training"]
    assert not any(op.startswith(("Apply", "ResourceApply", "Save", "Restore")) for op in info.ops)
    assert info.warnings and "training" in info.warnings[0]


def test_checkpoint_state_from_another_machine_is_resolved_beside_the_graph():
    for path in ("metagraph/model.meta", "tf1_checkpoint_v2/inference_graph.pb"):
        detection = detect(SAMPLES / path)
        assert detection.checkpoint.startswith(str(SAMPLES)), detection.checkpoint


def test_slim_graph_and_checkpoint_pair():
    detection = detect(SAMPLES / "slim_checkpoint" / "inception_v1_inference_graph.pb")
    assert detection.format.value == "checkpoint"
    assert "inception_v1.ckpt" in detection.checkpoint
    assert "variables" in detection.reason and "inception_v1.ckpt" in detection.reason


def test_text_and_binary_graphdef_agree():
    binary = inspect(detect(SAMPLES / "frozen_graph.pb"))
    text = inspect(detect(SAMPLES / "frozen_graph.pbtxt"))
    assert (binary.format, text.format) == ("graphdef", "graphdef_text")
    assert binary.inputs == text.inputs and binary.outputs == text.outputs and binary.ops == text.ops


def test_keras_versions_are_reported():
    assert inspect(detect(SAMPLES / "keras2_functional.h5")).producer.startswith("Keras 2")
    assert inspect(detect(SAMPLES / "keras_functional.keras")).producer.startswith("Keras 3")
    assert inspect(detect(SAMPLES / "keras3_functional.h5")).producer.startswith("Keras 3")


def test_onnx_file_is_recognised_as_out_of_scope(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, producer_name="tf2onnx"), str(path))
    assert detect(path).format.value == "onnx"
