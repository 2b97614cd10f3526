"""TF Hub and TF.js samples for build.py (issue 15): a TF1 Hub module and a TF.js layers model.

Each builder takes the output directory and returns manifest entries, like build.py's own.
TensorFlow, tf_keras and tensorflowjs are imported inside, after build.py has set up logging.
"""
import json
import os

OUTPUTS = ["tf1_hub_module", "tfjs_layers"]
FEATURES = 4


def _entry(path, fmt, inputs, outputs, notes, **extra):
    return {"path": path, "format": fmt, "inputs": inputs, "outputs": [{"name": n} for n in outputs],
            **extra, "notes": notes}


def _io(name, shape, dtype="float32"):
    return {"name": name, "dtype": dtype, "shape": [-1 if d is None else d for d in shape]}


def tf1_hub_module(out):
    """A TF1 Hub module as hub.Module.export() wrote them (tensorflow_hub 0.16 no longer can): a
    SavedModel whose meta graphs have the Hub tag sets (the default one is empty, plus "train") and no
    saver_def, the `default` signature and one more, and tfhub_module.pb (ModuleDef, FORMAT_V3)."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    v1, path = tf.compat.v1, os.path.join(out, "tf1_hub_module")
    utils = v1.saved_model.utils

    def signature(inputs, outputs):
        return v1.saved_model.signature_def_utils.build_signature_def(
            {k: utils.build_tensor_info(t) for k, t in inputs.items()},
            {k: utils.build_tensor_info(t) for k, t in outputs.items()})

    with tf.Graph().as_default(), v1.Session() as sess:
        x = v1.placeholder(tf.float32, [None, FEATURES], name="x")
        w = v1.get_variable("dense/kernel", [FEATURES, 3], initializer=v1.glorot_uniform_initializer(seed=15))
        b = v1.get_variable("dense/bias", [3], initializer=v1.constant_initializer(0.1))
        logits = tf.nn.bias_add(tf.matmul(x, w), b, name="logits")
        y = v1.placeholder(tf.float32, [None, FEATURES], name="y")
        doubled = tf.matmul(y * 2.0, w, name="doubled")
        sess.run(v1.global_variables_initializer())
        signatures = {"default": signature({"x": x}, {"default": tf.nn.softmax(logits, name="probs"), "logits": logits}),
                      "double": signature({"default": y}, {"default": doubled})}
        feed = np.linspace(-1, 1, 2 * FEATURES, dtype=np.float32).reshape(2, FEATURES)
        expected = sess.run(logits, {x: feed})
        builder = v1.saved_model.Builder(path)
        builder.add_meta_graph_and_variables(sess, [], signature_def_map=signatures)
        builder.add_meta_graph(["train"], signature_def_map=signatures)
        builder.save()
    message = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        message.ParseFromString(f.read())
    for meta in message.meta_graphs:  # hub.Module.export wrote no saver_def: loaders build a default Saver
        meta.ClearField("saver_def")
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(message.SerializeToString())
    with open(os.path.join(path, "tfhub_module.pb"), "wb") as f:
        f.write(b"\x08\x01")  # ModuleDef { format: FORMAT_V3 }
    got = tf.saved_model.load(path, tags=[]).signatures["default"](x=tf.constant(feed))["logits"].numpy()
    assert np.allclose(got, expected, atol=1e-6), "the hub module does not load back"
    return [_entry("tf1_hub_module", "tf_hub", [_io("x", [None, FEATURES])], ["default", "logits"],
                   "TF1 Hub module (tfhub_module.pb + SavedModel without saver_def): tag sets [] (the Hub default) "
                   "and [train], signatures default (x -> default softmax, logits) and double",
                   tags=[], tag_sets=[[], ["train"]], signatures=["default", "double"])]


def tfjs_layers(out):
    """A TF.js layers model (model.json + one weight shard), written by tensorflowjs from a tf_keras
    functional model: `pixels` (-1, 4) -> Dense(5, relu) -> Dense(3, softmax) `probs`."""
    import numpy as np
    import tf_keras
    from tensorflowjs.converters import keras_tfjs_loader, save_keras_model

    path = os.path.join(out, "tfjs_layers")
    tf_keras.utils.set_random_seed(15)
    x = tf_keras.Input((FEATURES,), name="pixels")
    h = tf_keras.layers.Dense(5, activation="relu", name="hidden")(x)
    model = tf_keras.Model(x, tf_keras.layers.Dense(3, activation="softmax", name="probs")(h), name="tiny_tfjs")
    save_keras_model(model, path)
    with open(os.path.join(path, "model.json")) as f:
        assert json.load(f)["format"] == "layers-model"
    feed = np.linspace(-1, 1, 2 * FEATURES, dtype=np.float32).reshape(2, FEATURES)
    back = keras_tfjs_loader.load_keras_model(os.path.join(path, "model.json"))
    assert np.allclose(back.predict(feed, verbose=0), model.predict(feed, verbose=0), atol=1e-6)
    return [_entry("tfjs_layers", "tfjs_layers", [_io("pixels", [None, FEATURES])], ["probs"],
                   "TF.js layers model written by tensorflowjs.converters.save_keras_model from tf_keras: "
                   "pixels (-1,4) -> Dense(5, relu) -> Dense(3, softmax) probs")]


BUILDERS = [tf1_hub_module, tfjs_layers]
