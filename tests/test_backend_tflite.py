"""The TFLite backend: real conversions run in LiteRT (ai-edge-litert) and compared with TensorFlow."""

from conftest import backend_options, convert_into, make_prepared_from_frozen, tf_outputs, scratch_dir
import functools
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from conftest import REPO, SAMPLES
from engine.backends import Prepared, get
from engine.detect import detect
from engine.inspect import TensorInfo, inspect
from engine.verify import compare


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
BACKEND = get("tflite")




def freeze(function, path):
    """Freeze a ConcreteFunction returning a dict; add an Identity node named after each key."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(function)
    gd = frozen.graph.as_graph_def()
    for key, tensor in zip(sorted(function.structured_outputs), frozen.outputs):  # dicts flatten sorted
        node = gd.node.add(name=key, op="Identity", input=[tensor.name.removesuffix(":0")])
        node.attr["T"].type = tensor.dtype.as_datatype_enum
    Path(path).write_bytes(gd.SerializeToString())
    return path


def prepared_from_function(function, path):
    args, kwargs = function.structured_input_signature  # positional (tf.function) or keyword (signatures)
    specs = [(s.name, s) for s in args] + list(kwargs.items())
    inputs = [TensorInfo(name, s.dtype.name, None if s.shape.rank is None else
                         [-1 if d is None else d for d in s.shape.as_list()]) for name, s in specs]
    return make_prepared_from_frozen(freeze(function, path), inputs, sorted(function.structured_outputs))


options = functools.partial(backend_options, "tflite")


def convert(prepared, tmp_path, **kw):
    outdir, logs = convert_into(BACKEND, prepared, options(**kw), tmp_path)
    return BACKEND.load(outdir, prepared), logs, outdir


def max_diff(runner, prepared, feeds):
    got, want = runner(feeds), tf_outputs(prepared, feeds)
    assert sorted(got) == sorted(prepared.outputs)
    return max(float(np.abs(got[k] - want[k]).max()) for k in prepared.outputs)


@pytest.fixture(scope="module")
def frozen():
    return make_prepared_from_frozen(SAMPLES / "frozen_graph.pb", [TensorInfo("input", "float32", [-1, 8])], ["output"])


@pytest.fixture(scope="module")
def dynamic(tmp_path_factory):
    """dynamic_shapes: int32 'tokens' [-1,16] and float 'signal' of unknown rank."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(SAMPLES / "dynamic_shapes"))  # keep alive while freezing
    function = loaded.signatures["serving_default"]
    specs = function.structured_input_signature[1]
    inputs = [TensorInfo(k, s.dtype.name, None if s.shape.rank is None else [-1, 16]) for k, s in specs.items()]
    path = freeze(function, tmp_path_factory.mktemp("dyn") / "dynamic.pb")
    return make_prepared_from_frozen(path, inputs, sorted(function.structured_outputs))


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    """A 64→64→10 MLP: weights of 4096 elements, so dynamic-range quantization touches them (≥1024)."""
    import tensorflow as tf

    w1 = tf.random.stateless_normal([64, 64], seed=[1, 2]) * 0.2
    w2 = tf.random.stateless_normal([64, 10], seed=[3, 4]) * 0.2
    fn = tf.function(lambda x: {"logits": tf.nn.relu(x @ w1) @ w2},
                     input_signature=[tf.TensorSpec([None, 64], tf.float32, name="x")])
    return prepared_from_function(fn.get_concrete_function(), tmp_path_factory.mktemp("dense") / "dense.pb")


def test_import_and_preflight_do_not_load_tensorflow():
    code = ("import sys, engine.backends.tflite as t;"
            "assert t.BACKEND.preflight({'Conv2D': 1, 'MatrixDeterminant': 2}) == {};"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=scratch_dir(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (BACKEND.name, BACKEND.main_file) == ("tflite", "model.tflite")


def test_converts_frozen_graph_and_matches_tensorflow(frozen, tmp_path):
    runner, logs, outdir = convert(frozen, tmp_path)
    assert sorted(p.name for p in outdir.iterdir()) == ["model.tflite"]
    assert any("wrote model.tflite" in line for line in logs)
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    assert max_diff(runner, frozen, {"input": x}) <= BACKEND.tolerance(options()).atol
    # the dynamic batch stays dynamic: another batch size runs through the same interpreter
    assert runner({"input": x[:1]})["output"].shape == (1, 4)


def test_signature_keys_are_prepared_names(frozen, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    convert(frozen, tmp_path)
    signatures = Interpreter(model_path=str(tmp_path / "tflite" / "model.tflite")).get_signature_list()
    assert signatures == {"serving_default": {"inputs": ["input"], "outputs": ["output"]}}


def test_int32_dynamic_batch_and_unknown_rank(dynamic, tmp_path):
    runner, logs, _ = convert(dynamic, tmp_path)
    assert any("'signal' has unknown rank" in line and "--input 'signal[1,16]'" in line for line in logs)
    rng = np.random.default_rng(1)
    for batch, signal_shape in ((2, (5,)), (4, (2, 3, 4))):
        feeds = {"tokens": rng.integers(0, 120, (batch, 16)).astype(np.int32),
                 "signal": rng.standard_normal(signal_shape).astype(np.float32)}
        assert max_diff(runner, dynamic, feeds) <= 1e-4


@pytest.mark.parametrize("mode", ["dynamic", "float16"])
def test_quantization_shrinks_and_stays_within_tolerance(dense, tmp_path, mode):
    runner, logs, outdir = convert(dense, tmp_path, quantize={"tflite": mode})
    size = (outdir / "model.tflite").stat().st_size
    assert size < dense.graph_def.ByteSize() * (0.5 if mode == "dynamic" else 0.6)  # measured 0.44, 0.56
    assert any(f"{mode}-quantized; float32 graph was" in line for line in logs)
    x = np.random.default_rng(2).uniform(-1, 1, (8, 64)).astype(np.float32)
    check = compare(tf_outputs(dense, {"x": x}), runner({"x": x}), BACKEND.tolerance(options(quantize={"tflite": mode})))
    assert check["passed"] and check["max_abs_diff"] > 0


def test_flex_fallback_and_unsupported_ops(tmp_path):
    import tensorflow as tf

    from engine.backends.tflite import ConversionFailed

    spec = [tf.TensorSpec([None, 3, 3], tf.float32, name="m")]
    flex = tf.function(lambda m: {"det": tf.linalg.det(m)}, input_signature=spec)
    prepared = prepared_from_function(flex.get_concrete_function(), tmp_path / "flex.pb")
    # Builtins only (every rung but the last): the error names the op and that Select TF ops would do.
    (tmp_path / "builtins").mkdir()
    with pytest.raises(ConversionFailed, match=r"Select TF ops needed\): MatrixDeterminant \(nodes: MatrixDeterminant\)"):
        BACKEND.convert(prepared, options(), tmp_path / "builtins", lambda line: None)
    # The ladder's last rung is Select TF ops, on the last graph tried.
    rungs = list(BACKEND.strategies(prepared))
    assert [name for name, _, _ in rungs] == ["frozen graph", "frozen graph, select TF ops"]
    outdir = tmp_path / "flex"
    outdir.mkdir()
    logs = []
    rungs[-1][2](prepared, options(), outdir, logs.append)
    assert any("Flex delegate" in line for line in logs)
    runner = BACKEND.load(outdir, prepared)
    x = np.random.default_rng(3).standard_normal((2, 3, 3)).astype(np.float32)
    assert max_diff(runner, prepared, {"m": x}) <= 1e-4

    custom = tf.function(lambda m: {"e": tf.math.bessel_i0e(m)}, input_signature=spec)  # neither builtin nor Flex
    prepared = prepared_from_function(custom.get_concrete_function(), tmp_path / "custom.pb")
    (tmp_path / "out").mkdir()
    with pytest.raises(ConversionFailed, match=r"BesselI0e \(nodes: bessel_i0e/BesselI0e\)"):
        BACKEND.convert(prepared, options(), tmp_path / "out", lambda line: None)


def test_tolerances():
    assert BACKEND.tolerance(options()).atol == 1e-4
    assert BACKEND.tolerance(options(quantize={"tflite": "float16"})).atol == 1e-2
    assert BACKEND.tolerance(options(quantize={"tflite": "dynamic"})).atol == 1e-1


def _command(model, **kw):
    opts = options(model=str(SAMPLES / model), output_dir="OUT", **kw)
    return BACKEND.upstream_command(opts, inspect(detect(opts.model), signature=opts.signature))


def test_upstream_command_spelling():
    sm = str(SAMPLES / "saved_model_tf2")
    assert _command("saved_model_tf2", signature="scale") == [
        "tflite_convert", "--saved_model_dir", sm, "--saved_model_tag_set", "serve",
        "--saved_model_signature_key", "scale", "--output_file", "OUT/tflite/model.tflite"]
    # quantization and shapes exist only in the V1 CLI, which names graph tensors
    assert _command("saved_model_tf2", batch=1, quantize={"tflite": "float16"}) == [
        "tflite_convert", "--enable_v1_converter", "--saved_model_dir", sm, "--saved_model_tag_set", "serve",
        "--saved_model_signature_key", "serving_default", "--output_file", "OUT/tflite/model.tflite",
        "--input_arrays", "serving_default_x", "--input_shapes", "1,4",
        "--post_training_quantize", "--quantize_to_float16"]
    assert _command("frozen_graph.pbtxt", inputs=(("input", (5, 8)),), quantize={"tflite": "dynamic"}) == [
        "tflite_convert", "--enable_v1_converter", "--graph_def_file", str(SAMPLES / "frozen_graph.pbtxt"),
        "--output_file", "OUT/tflite/model.tflite", "--input_arrays", "input", "--output_arrays", "output",
        "--input_shapes", "5,8", "--post_training_quantize"]
    assert _command("keras2_functional.h5")[:4] == [
        "env", "TF_USE_LEGACY_KERAS=1", "tflite_convert", "--keras_model_file"]
    # forms tflite_convert cannot take, or conversions it cannot express
    assert _command("keras_sequential.keras") is None  # Keras 3: tflite_convert's loader is tf_keras only
    assert _command("keras2_functional.h5", batch=1) is None  # V1 Keras path refuses --input_arrays
    assert _command("metagraph/model.meta") is None
    assert _command("dynamic_shapes", batch=2) is None  # 'signal' has unknown rank: no --input_shapes for it
    assert _command("saved_model_tf2", mean_values=(127.5,), scale_values=(127.5,)) is None


def test_upstream_cli_matches_our_conversion(tmp_path):
    """Run tflite_convert's own main() (what .venv/bin/tflite_convert calls) in-process, saving the TF import."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.python import tflite_convert

    assert (Path(sys.executable).parent / "tflite_convert").exists()
    argv = _command("saved_model_tf2")
    argv[argv.index("--output_file") + 1] = str(tmp_path / "upstream.tflite")
    with mock.patch.object(sys, "argv", argv):
        try:
            tflite_convert.main()
        except SystemExit as e:
            assert not e.code
    loaded = tf.saved_model.load(str(SAMPLES / "saved_model_tf2"))
    prepared = prepared_from_function(loaded.signatures["serving_default"], tmp_path / "tf2.pb")
    ours, _, _ = convert(prepared, tmp_path)
    upstream = Interpreter(model_path=str(tmp_path / "upstream.tflite")).get_signature_runner()
    x = np.random.default_rng(4).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(upstream(x=x)["y"], ours({"x": x})["y"], atol=1e-6)
