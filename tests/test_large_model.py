"""A model just over protobuf's 2 GiB limit converts (ONNX with external data, OpenVINO IR) and verifies.

Marked `large`: it writes ~2.2 GB of weights (zeros: cheap to build, not to hold), peaks at ~6 GB of
memory and ~9 GB of disk, and takes 2-3 minutes on 2 cores. Deselect with -m 'not large'. It skips
itself where less than 8 GB of memory is available.

The same path on a small model (the left-out weights forced by a low LARGE_MODEL_BYTES, in-process)
runs on all four targets in test_weights_outside_graph_small, quickly and without the marker.
"""
import json
import shutil
import subprocess
import sys

import pytest

from conftest import run_cli
from engine.resources import available_memory

WIDTH, LAYERS = 8192, 8  # 8 x 8192 x 8192 float32 = 2 GiB, plus a small layer that makes it just over

BUILD = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
width, layers, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

class Model(tf.Module):
    def __init__(self):
        # Zeros: the big weights add nothing to y, so verification sees the small layer's numbers.
        self.big = [tf.Variable(np.zeros((width, width), np.float32), name=f"big{k}") for k in range(layers)]
        self.small = tf.Variable(np.random.default_rng(0).standard_normal((width, 16)).astype(np.float32) / 90)

    @tf.function(input_signature=[tf.TensorSpec([None, width], tf.float32, name="x")])
    def serve(self, x):
        y = tf.matmul(x, self.small)
        for w in self.big:
            y += tf.matmul(x, w)[:, :16]
        return {"y": y}

m = Model()
tf.saved_model.save(m, out, signatures={"serving_default": m.serve})
"""


@pytest.fixture(scope="module")
def large_saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("large") / "sm"
    subprocess.run([sys.executable, "-c", BUILD, str(WIDTH), str(LAYERS), str(path)], check=True, timeout=600)
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


@pytest.mark.large
@pytest.mark.timeout(900)
def test_over_two_gib_converts_and_verifies(large_saved_model, tmp_path):
    if (available_memory() or 0) < 8 << 30:
        pytest.skip("needs 8 GB of available memory")
    out = tmp_path / "out"
    proc = run_cli("convert", str(large_saved_model), "--to", "onnx,openvino", "-o", str(out), timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    for t in report["targets"]:
        assert t["status"] == "ok", t
        assert t["verification"]["passed"], t
        assert t["strategy"] == "frozen graph, weights outside it"
    weights = LAYERS * WIDTH * WIDTH * 4
    data = out / "onnx" / "model.onnx.data"
    assert data.stat().st_size >= weights == 2 ** 31  # + the small layer (a constant): just over the limit
    assert (out / "onnx" / "model.onnx").stat().st_size < 1 << 20  # the graph alone: a plain protobuf
    # OpenVINO writes identical constants once: the eight zero matrices are one in model.bin.
    assert (out / "openvino" / "model.bin").stat().st_size >= WIDTH * WIDTH * 4
    shutil.rmtree(out)


@pytest.mark.timeout(600)
def test_weights_outside_graph_small(tmp_path, monkeypatch):
    """The large-model path itself, on a 2-MB model: every target converts from the left-out weights
    and verifies (TFLite float32 with its weights at buffer offsets, float16 as asked)."""
    import engine.prepare
    from engine.convert import convert
    from engine.options import ConversionOptions

    model = tmp_path / "sm"
    subprocess.run([sys.executable, "-c", BUILD.replace("np.zeros((width, width), np.float32)",
                                                        "np.eye(width, dtype=np.float32)"), "512", "2", str(model)],
                   check=True, timeout=300)
    monkeypatch.setattr(engine.prepare, "LARGE_MODEL_BYTES", 0)
    monkeypatch.setattr(engine.prepare, "WEIGHT_MIN_BYTES", 1 << 16)
    opts = ConversionOptions(model=str(model), output_dir=str(tmp_path / "out"),
                             targets=("onnx", "tflite", "openvino", "tfjs"), quantize=("tflite:float16",))
    report = convert(opts, lambda *a, **k: None)
    opts = ConversionOptions(model=str(model), output_dir=str(tmp_path / "out32"), targets=("tflite",))
    results = [*report.targets, *convert(opts, lambda *a, **k: None).targets]
    assert [t.target for t in results] == ["onnx", "tflite", "openvino", "tfjs", "tflite"]
    assert results[-1].verification["atol"] == 1e-4 < results[1].verification["atol"]  # float32, then float16
    for t in results:
        assert t.status == "ok", (t.target, t.message)
        assert t.strategy.startswith("frozen graph, weights outside it"), t.strategy
        assert "skipped" in t.verification or t.verification["passed"], (t.target, t.verification)
    assert (tmp_path / "out" / "onnx" / "model.onnx.data").stat().st_size >= 2 * 512 * 512 * 4


def test_memory_estimate_counts_the_tflite_converter(tmp_path):
    """A 2.2 GB model with 6.5 GB free: enough for ONNX/OpenVINO/TF.js (2 copies + TensorFlow), not
    with TFLite's converter (3 copies): refused up front in one line."""
    from engine.errors import UserError
    from engine.resources import check_space

    size, free = int(2.2e9), int(6.5e9)
    check_space(size, 3, free_disk=1 << 50, free_memory=free, out=tmp_path)
    with pytest.raises(UserError, match="needs about 7.7 GB of memory") as e:
        check_space(size, 4, free_disk=1 << 50, free_memory=free, out=tmp_path, tflite=True)
    assert "\n" not in str(e.value)


def test_mapped_weights_leave_memory_when_evicted(tmp_path):
    """engine.weights: the arrays read back what was stored; evict() gives their pages back."""
    import numpy as np

    from engine.weights import evict, store

    def rss():
        return next(int(ln.split()[1]) << 10 for ln in open("/proc/self/status") if ln.startswith("VmRSS"))

    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.full((64 << 20) // 4, 2, np.int32)}
    mapped = store(arrays, tmp_path / "w.bin")
    assert all(np.array_equal(mapped[k], arrays[k]) and mapped[k].dtype == arrays[k].dtype for k in arrays)
    del arrays
    evict(mapped)
    before = rss()
    assert int(mapped["b"].sum()) == 2 * ((64 << 20) // 4)  # touches every page
    assert rss() - before > 48 << 20
    evict(mapped)
    assert rss() - before < 16 << 20
    assert mapped["a"][2, 3] == 11  # read again from the file


LAYERS_MODULE = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
rng = np.random.default_rng(1)

def var(*shape):
    return tf.Variable((rng.standard_normal(shape) / np.sqrt(shape[-2])).astype(np.float32))

class Model(tf.Module):
    def __init__(self):
        self.w1, self.w2, self.b2, self.w3 = var(64, 256), var(256, 64), tf.constant(rng.standard_normal(64), tf.float32), var(96, 64)
        self.k, self.d, self.e = var(3, 3, 8, 64), var(3, 3, 64, 4), var(1000, 32)

    @tf.function(input_signature=[tf.TensorSpec([None, 64], tf.float32, name="x"),
                                  tf.TensorSpec([None, 5, 64], tf.float32, name="seq"),
                                  tf.TensorSpec([None, 12, 12, 8], tf.float32, name="img"),
                                  tf.TensorSpec([None, 5], tf.int32, name="ids")])
    def serve(self, x, seq, img, ids):
        dense = tf.nn.relu6(tf.matmul(tf.nn.relu(tf.matmul(x, self.w1)), self.w2) + self.b2)  # no bias, then a bias
        return {"dense": tf.matmul(dense, self.w3, transpose_b=True),
                "sequence": tf.nn.relu(tf.matmul(seq, self.w1)),  # BatchMatMulV2 by a 2-D weight
                "conv": tf.nn.relu(tf.nn.depthwise_conv2d(tf.nn.relu(tf.nn.conv2d(img, self.k, 1, "SAME")), self.d,
                                                          [1, 1, 1, 1], "VALID")),
                "embed": tf.gather(self.e, tf.math.floormod(ids, 1000))}

m = Model()
tf.saved_model.save(m, sys.argv[1], signatures={"serving_default": m.serve})
"""


@pytest.mark.timeout(600)
def test_tflite_streams_the_weights_of_common_layers(tmp_path, monkeypatch):
    """The large-model TFLite rung that converts the graph without its weights and writes them itself
    (engine.backends.tflite_weights), on Dense (with and without a bias, Relu/Relu6: the converter loses
    an activation after x @ W when W is an input), sequence Dense, Conv2D, DepthwiseConv2D and an
    embedding: float32 and float16 verify on that rung; dynamic needs the converter's rung."""
    from tensorflow.lite.python import schema_py_generated as fb

    import engine.prepare
    from engine.convert import convert
    from engine.options import ConversionOptions

    model = tmp_path / "sm"
    subprocess.run([sys.executable, "-c", LAYERS_MODULE, str(model)], check=True, timeout=300)
    monkeypatch.setattr(engine.prepare, "LARGE_MODEL_BYTES", 0)
    monkeypatch.setattr(engine.prepare, "WEIGHT_MIN_BYTES", 1 << 12)
    results = {}
    for quant in (None, "float16", "dynamic"):
        opts = ConversionOptions(model=str(model), output_dir=str(tmp_path / f"out-{quant}"), targets=("tflite",),
                                 quantize=(f"tflite:{quant}",) if quant else ())
        (results[quant],) = convert(opts, lambda *a, **k: None).targets
    for quant, t in results.items():
        assert t.status == "ok" and t.verification["passed"], (quant, t.message, t.verification)
        assert t.verification["outputs"]["dense"]["shape"] == [1, 96]  # a large model is verified at batch 1
    assert results[None].strategy == results["float16"].strategy == "frozen graph, weights outside it, streamed"
    assert results["dynamic"].strategy == "frozen graph, weights outside it, as a SavedModel"
    path = tmp_path / "out-float16" / "tflite" / "model.tflite"
    tflite = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(bytearray(path.read_bytes()), 0))
    outside = [b for b in tflite.buffers if b.offset]
    assert len(outside) >= 6 and min(b.offset for b in outside) >= 64  # past the FlatBuffer, in the file
    assert sum(b.size for b in outside) >= (64 * 256 + 256 * 64 + 96 * 64 + 9 * 8 * 64 + 1000 * 32) * 2
    codes = {max(c.builtinCode, c.deprecatedBuiltinCode)
             for c in (tflite.operatorCodes[op.opcodeIndex] for op in tflite.subgraphs[0].operators)}
    assert fb.BuiltinOperator.FULLY_CONNECTED in codes and fb.BuiltinOperator.TRANSPOSE not in codes
    assert fb.BuiltinOperator.DEQUANTIZE in codes  # float16 weights, dequantized as the converter does
    assert {t.type for t in tflite.subgraphs[0].tensors if t.buffer and tflite.buffers[t.buffer].offset} == {
        fb.TensorType.FLOAT16}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("sample", ["keras3_lstm.keras", "keras2_bigru.h5"])
def test_recurrent_model_with_weights_outside_the_graph(sample, tmp_path, monkeypatch):
    """A recurrent model on the large-model path (a text model with a big embedding takes it) reaches
    the control-flow-v2 rung there too, as a small one does: ONNX and TF.js need functional While, and
    TFLite Select TF ops for its tensor lists. Measured on a 370 MB embedding + LSTM before this rung
    existed: ONNX, TF.js and TFLite failed. The loops' weights must keep their shapes: freezing
    recorded their scalar stand-ins in the While ops, and onnxruntime refused the model."""
    from conftest import SAMPLES
    import engine.prepare
    from engine.convert import convert
    from engine.options import ConversionOptions

    monkeypatch.setattr(engine.prepare, "LARGE_MODEL_BYTES", 0)
    monkeypatch.setattr(engine.prepare, "WEIGHT_MIN_BYTES", 64)  # the recurrent kernels are a few hundred bytes
    opts = ConversionOptions(model=str(SAMPLES / sample), output_dir=str(tmp_path / "out"),
                             targets=("onnx", "openvino", "tfjs", "tflite"))
    results = {t.target: t for t in convert(opts, lambda *a, **k: None).targets}
    for target, t in results.items():
        assert t.status == "ok" and t.verification["passed"], (target, t.message, t.verification)
        assert "weights outside it" in t.strategy, (target, t.strategy)
    assert "control flow v2" in results["onnx"].strategy
    assert results["tflite"].strategy.endswith("streamed, select TF ops")


def test_memory_check_counts_the_tflite_converter_only_where_it_gets_the_weights(tmp_path, monkeypatch):
    """Up front, three copies of a large model only for tflite:dynamic (the converter's own route);
    float16 and float32 stream the weights past the converter: two copies."""
    import engine.prepare
    import engine.resources
    from conftest import SAMPLES
    from engine.detect import detect
    from engine.errors import UserError
    from engine.options import ConversionOptions

    model = SAMPLES / "image_classifier"
    detection = detect(str(model))
    size, nodes = engine.resources.model_bytes(detection), engine.resources.node_count(detection)
    two, three = (engine.resources.memory_needed(size, nodes, tflite=t) for t in (False, True))
    monkeypatch.setattr(engine.prepare, "LARGE_MODEL_BYTES", 0)
    monkeypatch.setattr(engine.resources, "available_memory", lambda: (two + three) // 2)

    def check(*quantize):
        opts = ConversionOptions(model=str(model), output_dir=str(tmp_path / "out"), targets=("onnx", "tflite"),
                                 quantize=quantize)
        engine.resources.check_resources(detect(opts.model), opts, tmp_path / "out")

    check()
    check("tflite:float16")
    with pytest.raises(UserError, match="of memory to convert"):
        check("tflite:dynamic")
    monkeypatch.setattr(engine.prepare, "LARGE_MODEL_BYTES", 1 << 40)  # a smaller model: the converter gets them
    with pytest.raises(UserError, match="of memory to convert"):
        check()


def test_deep_inspect_counts_the_weights_left_out_of_the_graph(tmp_path, monkeypatch):
    """inspect --deep's weight bytes (the wizard's "weights 370 MB" at each quantization) are the
    same whether the weights are constants in the frozen graph or left out of it (they read 267 kB
    for a 370 MB text model before)."""
    from conftest import SAMPLES
    import engine.prepare
    from engine.detect import detect
    from engine.frozen import analyse
    from engine.inspect import inspect
    from engine.options import ConversionOptions

    model = str(SAMPLES / "keras3_lstm.keras")
    opts = ConversionOptions(model=model, output_dir=str(tmp_path / "out"), targets=())

    def weight_bytes(work):
        work.mkdir()
        detection = detect(model)
        return analyse(detection, inspect(detection), opts, work, lambda *a, **k: None)["weight_bytes"]

    frozen = weight_bytes(tmp_path / "frozen")
    monkeypatch.setattr(engine.prepare, "LARGE_MODEL_BYTES", 0)
    monkeypatch.setattr(engine.prepare, "WEIGHT_MIN_BYTES", 64)
    left_out = weight_bytes(tmp_path / "left-out")
    assert left_out == frozen and frozen["float32_weights"] > 100
