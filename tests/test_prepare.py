"""The frozen, rebuilt graph that every target converts from computes what the original model computes.

Verification compares each target with this graph, so this test compares the graph itself
with the original model loaded TensorFlow's own way (Keras, tf.saved_model, a TF1 session).
"""

import numpy as np
import pytest

from conftest import MANIFEST, SAMPLES, run_cli
from engine.detect import detect
from engine.inspect import inspect
from engine.options import ConversionOptions
from engine.prepare import import_tensorflow, prepare, run_reference
from engine.verify import make_feeds


def original_outputs(tf, entry, info, feeds):
    path = SAMPLES / entry["path"]
    fmt = entry["format"]
    if fmt in ("keras_h5", "keras_v3"):
        import keras
        import tf_keras

        keras2 = info.producer.startswith("Keras 2")
        loader = tf_keras if keras2 else keras
        objects = None
        if entry.get("custom_objects"):  # the custom-layer samples' code, imported as tfwizard imports it
            from engine.user_code import custom_objects

            objects = custom_objects(ConversionOptions(model=str(path), targets=("onnx",), output_dir="unused",
                                                       custom_objects=(str(SAMPLES / entry["custom_objects"]),)),
                                     keras2=keras2)
        # the Lambda samples run their stored code when loaded: that is what they are for
        model = loader.models.load_model(str(path), compile=False, safe_mode=not entry.get("trust_required"),
                                         custom_objects=objects)
        result = model([feeds[i.name] for i in info.inputs] if len(info.inputs) > 1 else feeds[info.inputs[0].name])
        result = result if isinstance(result, (list, tuple)) else [result]
        return {o.name: np.asarray(r) for o, r in zip(info.outputs, result)}
    if fmt == "tfjs_layers":  # rebuilt by tensorflowjs' Keras loader, the way its converter reads it
        from tensorflowjs.converters import keras_tfjs_loader

        model = keras_tfjs_loader.load_keras_model(str(path / "model.json" if path.is_dir() else path))
        result = model([feeds[i.name] for i in info.inputs] if len(info.inputs) > 1 else feeds[info.inputs[0].name])
        result = result if isinstance(result, (list, tuple)) else [result]
        return {o.name: np.asarray(r) for o, r in zip(info.outputs, result)}
    if fmt in ("saved_model", "tf_hub"):  # a TF1 Hub module is a SavedModel (empty tag set)
        fn = tf.saved_model.load(str(path), tags=list(info.tag)).signatures[info.signature]
        return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in feeds.items()}).items()}
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        if fmt == "metagraph":
            tf.compat.v1.train.import_meta_graph(str(path)).restore(sess, detect(path).checkpoint)
        elif fmt == "checkpoint":
            graph_def = tf.compat.v1.GraphDef.FromString(path.read_bytes())
            tf.compat.v1.import_graph_def(graph_def, name="")
            refs = {op.name: op.outputs[0] for op in graph.get_operations() if op.type == "VariableV2"}
            if not refs:
                pytest.skip("resource-variable graph: no independent TF1 loader for it besides ours")
            tf.compat.v1.train.Saver(var_list=refs).restore(sess, detect(path).checkpoint)
        else:
            graph_def = tf.compat.v1.GraphDef()
            if fmt == "graphdef":
                graph_def.ParseFromString(path.read_bytes())
            else:
                from google.protobuf import text_format
                text_format.Parse(path.read_text(), graph_def)
            tf.compat.v1.import_graph_def(graph_def, name="")
        values = sess.run([f"{o.name}:0" for o in info.outputs], {f"{k}:0": v for k, v in feeds.items()})
    return dict(zip([o.name for o in info.outputs], values))


MODELS = [m for m in MANIFEST if m["format"] != "keras_weights_only" and not m.get("failure_class")]


@pytest.mark.parametrize("entry", MODELS, ids=[m["path"] for m in MODELS])
def test_prepared_graph_matches_the_original_model(entry, tmp_path):
    tf = import_tensorflow()
    detection = detect(SAMPLES / entry["path"])
    info = inspect(detection)
    options = ConversionOptions(model=entry["path"], targets=("onnx",), output_dir=str(tmp_path / "o"),
                                trust_model=bool(entry.get("trust_required")),
                                custom_objects=(str(SAMPLES / entry["custom_objects"]),) if entry.get("custom_objects") else ())
    prepared = prepare(detection, info, options, tmp_path)
    feeds = make_feeds(prepared.inputs)
    expected = original_outputs(tf, entry, info, feeds)
    actual = run_reference(tf, prepared, feeds)
    assert set(actual) == set(expected)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-6)


def test_preprocessing_is_baked_in(tmp_path):
    """converted(raw) == original((raw[..., ::-1] - mean) / scale), here at the prepared-graph level."""
    tf = import_tensorflow()
    detection = detect(SAMPLES / "image_classifier")
    info = inspect(detection)
    options = ConversionOptions(model="x", targets=("onnx",), output_dir="o", preset="mobilenet",
                                reverse_input_channels=True)
    prepared = prepare(detection, info, options, tmp_path)
    raw = make_feeds(prepared.inputs, raw_pixels=True)
    assert raw["image"].max() > 1.0
    by_hand = {"image": ((raw["image"][..., ::-1] - 127.5) / 127.5).astype(np.float32)}
    expected = original_outputs(tf, {"path": "image_classifier", "format": "saved_model"}, info, by_hand)
    np.testing.assert_allclose(run_reference(tf, prepared, raw)["probs"], expected["probs"], rtol=1e-5, atol=1e-6)


def test_an_output_named_like_an_input_is_refused_not_swapped(tmp_path):
    """A signature whose output "x" shares its input's name: TensorFlow would rename the output node,
    and "x" would then fetch the input itself, on every target and in the reference alike (verification
    passed on it). Refused in one line instead."""
    import tensorflow as tf

    class Echo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            return {"x": x * 2.0 + 1.0}

    m = Echo()
    tf.saved_model.save(m, str(tmp_path / "sm"), signatures={"serving_default": m.serve})
    proc = run_cli("convert", tmp_path / "sm", "--to", "onnx", "-o", tmp_path / "out", timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]  # after the progress lines
    assert last.startswith("tfwizard: error: output 'x' has the same name as an input") and "re-export" in last

    class Named(tf.Module):  # "model" is the scope the prepared graph imports the model's nodes under
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            return {"model": x * 2.0}

    m = Named()
    tf.saved_model.save(m, str(tmp_path / "named"), signatures={"serving_default": m.serve})
    proc = run_cli("convert", tmp_path / "named", "--to", "onnx", "-o", tmp_path / "out2", timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "output 'model' is the name tfwizard's prepared graph gives" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()
