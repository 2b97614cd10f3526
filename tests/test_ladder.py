"""The strategy ladder per target (engine/ladder.py), on the recurrent and text samples (issue 13).

Keras LSTMs frozen with lowered control flow leave TensorList ops tf2onnx can't convert (so its ladder
starts at control flow v2 for them) and frames TFLite refuses; the next rungs (control flow v2; TFLite's TF1 converter; Select TF ops) convert them.
test_convert.py checks every sample on every target; these check which rung did it, and that the
report and the CLI say so.
"""

import json

import numpy as np
import pytest

from conftest import SAMPLES, run_cli
from engine.convert import convert
from engine.options import ConversionOptions


def test_keras2_lstm_converts_through_control_flow_v2_and_says_so(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("convert", SAMPLES / "keras2_lstm.h5", "--to", "onnx,tflite", "-o", out, timeout=600)
    assert proc.returncode == 0, proc.stderr
    targets = {t["target"]: t for t in json.loads((out / "report.json").read_text())["targets"]}
    onnx, tflite = targets["onnx"], targets["tflite"]
    assert onnx["strategy"] == "Keras model, control flow v2" and onnx["verification"]["passed"]
    assert onnx["attempts"] == []  # v2 first: the lowered graph's TensorList ops are what tf2onnx can't convert
    assert tflite["strategy"] == "Keras model, control flow v2, select TF ops" and tflite["verification"]["passed"]
    assert "[Keras model, control flow v2]" in proc.stdout  # the CLI's summary names the rung
    assert not list(tmp_path.glob(".out.tmp-*")) and not (out / ".work").exists()


def test_tf1_while_loop_graph_goes_through_tflites_tf1_converter(tmp_path):
    options = ConversionOptions(model=str(SAMPLES / "tf1_gru_frozen.pb"), targets=("onnx", "tflite"),
                                output_dir=str(tmp_path / "out"))
    report = convert(options, emit=lambda *a, **k: None)
    results = {t.target: t for t in report.targets}
    assert results["onnx"].strategy == "frozen graph"  # no functions to keep: rung 1 is all there is
    assert results["tflite"].strategy == "frozen graph, TFLite's TF1 converter, select TF ops"
    assert "different frames" in results["tflite"].attempts[0]["error"]
    assert results["tflite"].verification["passed"], results["tflite"].verification


def test_a_rung_that_converts_but_fails_verification_is_not_kept(tmp_path):
    """Keras 3's lowered LSTM converts to TF.js but cannot run there; control flow v2 can."""
    options = ConversionOptions(model=str(SAMPLES / "keras3_lstm.keras"), targets=("tfjs",),
                                output_dir=str(tmp_path / "out"))
    result = convert(options, emit=lambda *a, **k: None).targets[0]
    if "skipped" in (result.verification or {}):
        pytest.skip(result.verification["skipped"])
    assert result.status == "ok" and result.strategy == "Keras model, control flow v2"
    assert result.attempts[0]["strategy"] == "frozen graph" and "verification" in result.attempts[0]["error"]


def test_string_inputs_get_words_from_the_models_vocabulary():
    from engine.inspect import TensorInfo
    from engine.verify import make_feeds

    feeds = make_feeds([TensorInfo(name="words", dtype="string", shape=[8])], vocabulary=[b"cat", b"mat"])
    words = feeds["words"]
    assert words.dtype == object and words.shape == (8,) and all(isinstance(w, bytes) for w in words)
    assert {b"cat", b"mat"} & set(words) and set(words) - {b"cat", b"mat"}


def test_text_model_with_a_lookup_table_matches_tensorflow_on_tflite(tmp_path):
    """No upstream converts it; a TF1 session freeze keeps the table's initialiser in the graph."""
    options = ConversionOptions(model=str(SAMPLES / "text_lookup_tf1"), targets=("tflite",),
                                output_dir=str(tmp_path / "out"))
    result = convert(options, emit=lambda *a, **k: None).targets[0]
    assert result.status == "ok" and result.verification["passed"], (result.message, result.verification)
    # The table is really filled: known words and unknown words score differently.
    import tensorflow as tf

    runner = tf.lite.Interpreter(str(tmp_path / "out" / "tflite" / "model.tflite")).get_signature_runner()
    known = runner(words=np.array([b"cat", b"sat"], dtype=object))["scores"]
    unknown = runner(words=np.array([b"xyz", b"qqq"], dtype=object))["scores"]
    assert not np.allclose(known, unknown)


def test_keras_file_from_another_keras_release_names_both_versions(tmp_path):
    """A .keras that today's Keras rebuilds wrongly ("Layer dense expects 1 input(s), but it received
    2", as with files from older Keras 3 releases): the message says which Keras wrote it and what to do."""
    import zipfile

    source = SAMPLES / "keras_sequential.keras"
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(source) as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    dense = config["config"]["layers"][1]
    assert dense["class_name"] == "Dense"
    # A Sequential config keeps no inbound nodes; turn it into the shape such files have: Functional
    # with the Dense layer called on [x, x].
    x = {"class_name": "__keras_tensor__", "config": {"shape": [None, 8], "dtype": "float32",
                                                       "keras_history": ["features", 0, 0]}}
    inp = {"module": "keras.layers", "class_name": "InputLayer", "name": "features",
           "config": {"batch_shape": [None, 8], "dtype": "float32", "name": "features"}, "inbound_nodes": []}
    dense["name"] = dense["config"]["name"]
    dense["inbound_nodes"] = [{"args": [[x, x]], "kwargs": {}}]
    files["config.json"] = json.dumps({"module": "keras.src.models.functional", "class_name": "Functional",
                                       "config": {"name": "m", "layers": [inp, dense], "input_layers": ["features", 0, 0],
                                                  "output_layers": [dense["name"], 0, 0]}}).encode()
    meta = json.loads(files["metadata.json"])
    meta["keras_version"] = "3.0.5"
    files["metadata.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(old, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    proc = run_cli("convert", old, "--to", "onnx", "-o", tmp_path / "out", timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]  # after the progress lines: one line for the error
    assert "written by Keras 3.0.5" in line and "expects 1 input(s), but it received 2" in line, line
    assert "pip install keras==3.0.5" in line and "model.export" in line
    assert "damaged" not in line and "custom layers" not in line


def test_onnx_starts_at_control_flow_v2_for_a_lowered_rnn_because_the_lowered_rung_fails(tmp_path):
    """The order is measured, not assumed: tf2onnx on the lowered Keras LSTM graph (the rung ONNX now
    tries last) fails on its TensorList ops."""
    from engine import backends
    from engine.detect import detect
    from engine.inspect import inspect
    from engine.prepare import prepare

    options = ConversionOptions(model=str(SAMPLES / "keras2_lstm.h5"), targets=("onnx",), output_dir=str(tmp_path / "o"))
    detection = detect(options.model)
    prepared = prepare(detection, inspect(detection), options, tmp_path)
    onnx = backends.get("onnx")
    names = [name for name, _, _ in onnx.strategies(prepared)]
    assert names == ["Keras model, control flow v2", "frozen graph"]
    (tmp_path / "lowered").mkdir()
    with pytest.raises(backends.ConversionFailed, match="TensorListReserve"):
        onnx.convert(prepared, options, tmp_path / "lowered", lambda message: None)
