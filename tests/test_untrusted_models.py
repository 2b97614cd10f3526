"""Keras models that run code when loaded (Lambda layers, custom objects) are flagged by inspect,
refused by convert without --trust-model, and converted with it."""

import json

import pytest

from conftest import MANIFEST, SAMPLES, assert_clean_error, run_cli
from engine.detect import detect
from engine.errors import UserError
from engine.inspect import inspect
from engine.keras_safety import code_risks
from engine.options import ConversionOptions

UNTRUSTED = [m for m in MANIFEST if m.get("trust_required") and not m.get("custom_objects")]  # those: test_custom_code


def test_the_samples_include_lambda_models_in_both_keras_formats():
    assert {m["format"] for m in UNTRUSTED} == {"keras_v3", "keras_h5"}


@pytest.mark.parametrize("entry", UNTRUSTED, ids=[m["path"] for m in UNTRUSTED])
def test_inspect_flags_lambda_layers(entry):
    human = run_cli("inspect", SAMPLES / entry["path"])
    assert human.returncode == 0, human.stderr
    assert "Lambda layer 'affine'" in human.stdout and "--trust-model" in human.stdout
    doc = json.loads(run_cli("inspect", SAMPLES / entry["path"], "--json").stdout)
    assert doc["code_risks"] == ["Lambda layer 'affine': Python code stored in the file"]


def test_no_other_sample_is_flagged():
    for entry in MANIFEST:
        if entry["format"] != "keras_weights_only" and not entry.get("trust_required"):
            assert inspect(detect(SAMPLES / entry["path"])).code_risks == [], entry["path"]


@pytest.mark.parametrize("entry", UNTRUSTED, ids=[m["path"] for m in UNTRUSTED])
def test_convert_refuses_without_trust_model(entry, tmp_path):
    out = tmp_path / "out"
    for extra in ([], ["--dryrun"]):
        proc = run_cli("convert", SAMPLES / entry["path"], "--to", "onnx", "-o", out, *extra)
        assert_clean_error(proc, "Lambda layer 'affine'", "--trust-model")
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("entry", UNTRUSTED, ids=[m["path"] for m in UNTRUSTED])
def test_convert_with_trust_model_converts_and_verifies(entry, tmp_path):
    from engine.convert import convert
    from engine.options import ConversionOptions

    options = ConversionOptions(model=str(SAMPLES / entry["path"]), targets=("onnx",), output_dir=str(tmp_path / "out"),
                                trust_model=True)
    assert "--trust-model" in options.command()
    report = convert(options, emit=lambda *a, **k: None)
    (result,) = report.targets
    assert result.status == "ok", result.message
    assert result.verification["passed"], result.verification
    assert (tmp_path / "out" / "onnx" / "model.onnx").is_file()


def test_lambda_code_never_runs_without_consent(tmp_path):
    """A Keras 2 .h5 whose Lambda writes a file: tf_keras would run it on load (no safe mode for
    legacy .h5). Neither convert nor our loader itself (safe-mode scope) may run it."""
    from engine.prepare import _freeze_keras, import_tensorflow

    tf = import_tensorflow()
    import tf_keras

    marker = tmp_path / "ran"
    payload = eval(f"lambda t: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), t)[1]")
    x = tf_keras.Input((4,), name="x")
    model = tf_keras.Model(x, tf_keras.layers.Dense(2, name="out")(tf_keras.layers.Lambda(payload, name="evil")(x)))
    model.save(tmp_path / "evil.h5")
    marker.unlink()  # building the model ran the lambda once, here, on purpose
    proc = run_cli("convert", tmp_path / "evil.h5", "--to", "onnx", "-o", tmp_path / "out")
    assert_clean_error(proc, "Lambda layer 'evil'", "--trust-model")
    assert not marker.exists()
    detection = detect(tmp_path / "evil.h5")
    options = ConversionOptions(model=str(tmp_path / "evil.h5"), targets=("onnx",), output_dir="unused")
    with pytest.raises(UserError, match="Keras could not load"):
        _freeze_keras(tf, detection, inspect(detection), options)
    assert not marker.exists()
    _freeze_keras(tf, detection, inspect(detection), options.replace(trust_model=True))
    assert marker.exists()  # with consent it does run: the flag is what stands between


@pytest.mark.parametrize("config, expected", [
    ({"class_name": "Functional", "config": {"layers": [
        {"module": None, "class_name": "Scale", "registered_name": "MyPkg>Scale", "config": {"name": "scale"}}]}},
     "custom object MyPkg>Scale"),
    ({"class_name": "Functional", "config": {"layers": [
        {"module": "my_layers", "class_name": "Block", "registered_name": None, "config": {"name": "b"}}]}},
     "from module 'my_layers'"),
    ({"class_name": "Functional", "config": {"layers": [{"module": "keras.layers", "class_name": "Dense", "config": {
        "name": "d", "activation": {"module": "builtins", "class_name": "function", "config": "myact",
                                    "registered_name": "function"}}}]}},
     "custom function 'myact' in Dense 'd'"),
    ({"class_name": "Sequential", "config": {"layers": [{"class_name": "MyKeras2Layer", "config": {"name": "m"}}]}},
     "custom MyKeras2Layer 'm': not a built-in Keras class"),
    ({"class_name": "Functional", "config": {"layers": [{"class_name": "Functional", "config": {"name": "inner", "layers": [
        {"class_name": "Lambda", "config": {"name": "deep"}}]}}]}},
     "Lambda layer 'deep'"),
    ({"class_name": "Functional", "config": {"layers": [{"module": "keras.layers", "class_name": "Dense", "config": {
        "name": "d", "activation": {"class_name": "__lambda__", "config": {"code": "..."}}}}]}},
     "Python lambda in Dense 'd'"),
    ({"class_name": "MySubclassedModel", "config": {}}, "custom MySubclassedModel"),
])
def test_code_risks_from_the_config_alone(config, expected):
    risks = code_risks(config)
    assert len(risks) == 1 and expected in risks[0], risks


def test_builtin_configs_are_not_flagged():
    config = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"name": "x"}},
        {"module": "keras.layers", "class_name": "Dense", "config": {"name": "d", "activation": "relu",
         "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {}},
         "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}}},
        {"class_name": "BatchNormalization", "config": {"name": "bn"}},
        {"class_name": "TFOpLambda", "config": {"name": "tf.concat", "function": "concat"}},
        {"class_name": "TFOpLambda", "config": {"name": "tf.math.add", "function": "math.add"}}]}}
    assert code_risks(config) == []
