"""Samples with Keras custom layers for build.py (issue 15): the model files and the .py files that
define their classes (custom_objects/keras2_layers.py, custom_objects/keras3_layers.py, kept in git).

Each builder takes the output directory and returns manifest entries, like build.py's own. Each
entry names its code in `custom_objects` and what inspect must list in `custom_classes`.
TensorFlow, Keras and tf_keras are imported inside, after build.py has set up logging.
(Custom op libraries are native code compiled against the installed TensorFlow, so their sample
graph is built by the tests that compile the library: tests/test_custom_code.py.)
"""
import contextlib
import importlib.util
import os
import shutil
import sys

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "custom_objects")
OUTPUTS = ["custom_objects/keras2_scale.h5", "custom_objects/keras3_scale.keras", "custom_objects/keras3_scale.h5"]
SOURCES = ["keras2_layers.py", "keras3_layers.py"]  # inputs, not outputs: never removed


def _entry(path, fmt, notes, code, classes):
    return {"path": path, "format": fmt, "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 4]}],
            "outputs": [{"name": "out"}], "trust_required": True, "custom_objects": code,
            "custom_classes": classes, "notes": notes}


@contextlib.contextmanager
def _keras_is_tf_keras():
    """`import keras.backend`, `from keras.layers import Layer` get tf_keras while inside (what a
    standalone-Keras-2 file expects; tfwizard does the same with engine.user_code)."""
    import tf_keras

    saved = {k: sys.modules.pop(k) for k in [k for k in sys.modules if k == "keras" or k.startswith("keras.")]}
    sys.modules.update({"keras": tf_keras, "keras.backend": tf_keras.backend, "keras.layers": tf_keras.layers})
    try:
        yield
    finally:
        for k in ("keras", "keras.backend", "keras.layers"):
            sys.modules.pop(k, None)
        sys.modules.update(saved)


def _import(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _set_scale_shift(layer, np, seed):
    rng = np.random.default_rng(seed)
    n = layer.scale.shape[0]
    layer.set_weights([rng.uniform(0.5, 1.5, n).astype("float32"), rng.uniform(-0.5, 0.5, n).astype("float32")])


def keras2_custom_layer(out):
    """A tf_keras model with a custom layer whose file imports standalone `keras`."""
    import numpy as np
    import tf_keras

    os.makedirs(os.path.join(out, "custom_objects"), exist_ok=True)
    if os.path.abspath(out) != os.path.dirname(HERE):  # --out elsewhere: the code goes with the models
        for name in SOURCES:
            shutil.copy(os.path.join(HERE, name), os.path.join(out, "custom_objects", name))
    with _keras_is_tf_keras():
        layers = _import("keras2_layers")
    tf_keras.utils.set_random_seed(0)
    x = tf_keras.Input((4,), name="x")
    h = tf_keras.layers.Dense(8, activation="relu", name="hidden")(x)
    scaled = layers.ScaleShift(name="scale_shift")(h)
    model = tf_keras.Model(x, tf_keras.layers.Dense(2, name="out")(scaled))
    _set_scale_shift(model.get_layer("scale_shift"), np, 1)
    path = os.path.join(out, "custom_objects", "keras2_scale.h5")
    model.save(path)
    feed = np.linspace(-1, 1, 8, dtype="float32").reshape(2, 4)
    loaded = tf_keras.models.load_model(path, compile=False, custom_objects={"ScaleShift": layers.ScaleShift})
    np.testing.assert_allclose(loaded(feed), model(feed), rtol=1e-6)
    try:
        tf_keras.models.load_model(path, compile=False)
    except ValueError as e:
        assert "ScaleShift" in str(e), e
    else:
        raise AssertionError("keras2_scale.h5 loaded without its custom layer's code")
    return [_entry("custom_objects/keras2_scale.h5", "keras_h5",
                   "Keras 2 (tf_keras) .h5: x (-1,4) -> Dense(8, relu) -> custom layer ScaleShift (tanh(x*scale+shift), "
                   "trained weights) -> Dense(2) 'out'. Its code is keras2_layers.py, written against standalone "
                   "Keras 2 (import keras.backend as K): convert with --custom-objects and --trust-model.",
                   "custom_objects/keras2_layers.py", ["ScaleShift"])]


def keras3_custom_layer(out):
    """A Keras 3 model with a registered custom layer and a registered custom activation, as .keras and .h5."""
    import keras
    import numpy as np

    layers = _import("keras3_layers")
    keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="x")
    h = keras.layers.Dense(8, activation=layers.scaled_swish, name="hidden")(x)
    scaled = layers.ScaleShift(name="scale_shift")(h)
    model = keras.Model(x, keras.layers.Dense(2, name="out")(scaled))
    _set_scale_shift(model.get_layer("scale_shift"), np, 2)
    feed = np.linspace(-1, 1, 8, dtype="float32").reshape(2, 4)
    entries = []
    for name, fmt in (("keras3_scale.keras", "keras_v3"), ("keras3_scale.h5", "keras_h5")):
        path = os.path.join(out, "custom_objects", name)
        model.save(path)
        loaded = keras.saving.load_model(path, compile=False)  # registered: this process imported the code
        np.testing.assert_allclose(loaded(feed), model(feed), rtol=1e-6)
        entries.append(_entry(
            f"custom_objects/{name}", fmt,
            f"Keras 3 {'.keras' if fmt == 'keras_v3' else '.h5'}: x (-1,4) -> Dense(8, custom activation scaled_swish) "
            "-> custom layer ScaleShift -> Dense(2) 'out', both registered as tfwizard_demo>...; their code is "
            "keras3_layers.py: convert with --custom-objects and --trust-model.",
            "custom_objects/keras3_layers.py", ["tfwizard_demo>scaled_swish", "tfwizard_demo>ScaleShift"]))
    return entries


BUILDERS = [keras2_custom_layer, keras3_custom_layer]
