"""Failures first seen on real models of the zoo (bench/zoo.py), rebuilt small.

- musicnn's TF1 MetaGraphs (training left in): gradient nodes carry `_output_shapes` that disagree
  with the graph, which TensorFlow's importer refuses; tf2onnx fails on them the same way.
- The same models' tf.cond on an is_training placeholder leaves switch_f / pred_id nodes that
  nothing consumes; they depend on the boolean switch only and are not outputs.
"""

import json
import shutil

import pytest

from conftest import SAMPLES, run_cli
from engine.detect import detect
from engine.inspect import inspect


@pytest.fixture(scope="module")
def tf():
    from engine.prepare import import_tensorflow

    return import_tensorflow()


def test_stale_output_shapes_in_a_metagraph_do_not_stop_the_conversion(tf, tmp_path):
    from tensorflow.core.framework import tensor_shape_pb2
    from tensorflow.python.framework import meta_graph

    model = tmp_path / "metagraph"
    shutil.copytree(SAMPLES / "metagraph", model)
    meta = meta_graph.read_meta_graph_file(str(model / "model.meta"))
    stale = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=0)])
    for node in meta.graph_def.node:  # every node claims a [0] output: not what the graph computes
        shapes = node.attr["_output_shapes"].list.shape
        del shapes[:]
        shapes.append(stale)
    (model / "model.meta").write_bytes(meta.SerializeToString())
    with tf.Graph().as_default():  # what the importer itself says of such a file
        with pytest.raises(ValueError, match="_output_shapes"):
            tf.compat.v1.train.import_meta_graph(meta)

    proc = run_cli("convert", model / "model.meta", "--to", "onnx", "-o", tmp_path / "out", timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["targets"][0]["verification"]["passed"] is True


def test_cond_plumbing_fed_only_by_a_boolean_switch_is_not_an_output(tf, tmp_path):
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        v1.disable_control_flow_v2()  # TF1 graphs: tf.cond as Switch/Merge, with its switch_t/f nodes
        try:
            x = v1.placeholder(tf.float32, [None, 4], name="x")
            training = v1.placeholder_with_default(False, [], name="is_training")
            y = tf.cond(training, lambda: tf.nn.relu(x), lambda: tf.nn.relu6(x))  # no constants: switch_t/f dangle
            tf.identity(y + 1.0, name="y")
        finally:
            v1.enable_control_flow_v2()
    assert any(n.name.endswith("switch_f") for n in graph.as_graph_def().node)
    path = tmp_path / "cond.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())

    info = inspect(detect(str(path)))
    assert [o.name for o in info.outputs] == ["y"]
    assert "x" in [i.name for i in info.inputs]


@pytest.mark.timeout(300)
def test_keras3_gru_with_dropout_freezes_without_its_seed_generator_write(tf, tmp_path):
    """The zoo's ao-compensation-model GRUs: Keras 3 RNNs with dropout draw (unused) dropout masks at
    inference too, writing their SeedGenerator's state variable. Freezing made that variable a constant,
    and TensorFlow refused to import the graph ("... incompatible with expected resource"). The write is
    dropped; what the model computes is Keras' own inference output."""
    import keras
    import numpy as np

    from engine.options import ConversionOptions
    from engine.plan import plan
    from engine.prepare import prepare, run_reference

    path = SAMPLES / "keras3_gru_dropout.keras"
    model = keras.models.load_model(path)
    traced = tf.function(lambda x: model(x, training=False)).get_concrete_function(tf.TensorSpec([None, 5, 3]))
    assert "AssignVariableOp" in {op.type for op in traced.graph.get_operations()}  # the sample shows the cause

    options = ConversionOptions(model=str(path), targets=("onnx",), output_dir=str(tmp_path / "out"))
    detection, info = plan(options)
    prepared = prepare(detection, info, options, tmp_path)
    assert not {n.op for n in prepared.graph_def.node} & {"AssignVariableOp", "StatelessRandomUniformV2"}
    x = np.random.default_rng(0).uniform(size=(2, 5, 3)).astype("float32")
    got = run_reference(tf, prepared, {"sequence": x})["scores"]
    np.testing.assert_allclose(got, model(x, training=False).numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.timeout(600)
def test_time_major_rnn_with_keep_prob_is_verified_with_feeds_it_accepts(tmp_path):
    """The zoo's cutkum: a TF1 dynamic_rnn, time-major, with a shapeless keep_prob. The usual feeds
    ([2, 8, 3] inputs, a random keep_prob of shape [2, 8]) made TensorFlow itself fail; keep_prob is
    fed 1.0 and, when the first layout fails, every dynamic dim gets one size (batch and time alike)."""
    from engine.convert import convert
    from engine.options import ConversionOptions

    options = ConversionOptions(model=str(SAMPLES / "tf1_time_major_rnn.pb"), targets=("onnx", "openvino", "tflite"),
                                output_dir=str(tmp_path / "out"))
    report = convert(options, emit=lambda *a, **k: None)
    results = {t.target: t for t in report.targets}
    for target in ("onnx", "tflite"):
        v = results[target].verification
        assert results[target].status == "ok" and v["passed"], (target, results[target].message, v)
        assert v["outputs"]["scores"]["shape"] == [8, 2]  # batch 8: the uniform layout
    # As with ovc: no rule for a dynamic TensorArrayV3. One line, naming it.
    assert results["openvino"].status == "failed" and "TensorArrayV3" in results["openvino"].message
    assert "\n" not in results["openvino"].message


def test_dropout_switches_and_sequence_lengths_get_values_the_model_means():
    from engine.inspect import TensorInfo
    from engine.verify import make_feeds

    feeds = make_feeds([TensorInfo("placeholder/keep_prob", "float32", None), TensorInfo("dropout_rate", "float32", []),
                        TensorInfo("placeholder/seq_lengths", "int32", [-1]), TensorInfo("x", "float32", None),
                        TensorInfo("ids", "int32", [-1])])
    assert feeds["placeholder/keep_prob"].shape == () and feeds["placeholder/keep_prob"] == 1.0
    assert feeds["dropout_rate"] == 0.0
    assert feeds["placeholder/seq_lengths"].tolist() == [8, 8]  # the whole test sequence
    assert feeds["x"].shape == (2, 8)  # other shapeless inputs as before
    assert len(set(feeds["ids"].tolist() + make_feeds([TensorInfo("ids", "int32", [-1])], batch=20)["ids"].tolist())) > 1
