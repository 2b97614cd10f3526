"""--sample-input: verification on the user's own inputs (engine.sample_inputs, engine.images), and
TensorFlow fed the preprocessing computed apart from the graph, so the check proves the preprocessing
baked into every target."""

import json

import numpy as np
import pytest

from conftest import SAMPLES, assert_clean_error, run_cli
from images import photo_like, write_png

CLASSIFIER = SAMPLES / "image_classifier.keras"  # image (-1,32,32,3) in [-1, 1] → probs (10 classes)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "photo.png"
    write_png(path, photo_like(48, 40))  # not 32×32: must be resized to the input
    return path


@pytest.mark.timeout(600)
def test_an_image_on_the_preset_sample_is_resized_preprocessed_and_ranked(tmp_path, photo):
    out = tmp_path / "out"
    proc = run_cli("convert", CLASSIFIER, "--to", "onnx,tfjs,openvino,tflite", "-o", out, "--preset", "inception",
                   "--reverse-input-channels", "--sample-input", f"image={photo}", "--sample-input", photo, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    for t in report["targets"]:
        v = t["verification"]
        assert v["passed"], t
        assert v["sample_inputs"] == [f"image={photo}", str(photo)]
        probs = v["outputs"]["probs"]
        assert probs["shape"] == [2, 10]  # the two files, stacked along the batch
        assert probs["top1_agreement"] == 1.0 and probs["top5_agreement"] == 1.0 and probs["samples"] == 2
    assert "top-1 100% / top-5 100% of 2 samples: PASS" in proc.stdout


@pytest.mark.timeout(600)
def test_a_wrongly_baked_preprocessing_fails_the_check_on_an_image(tmp_path, photo, monkeypatch):
    """The fault is put in the converted models only: prepare bakes a formula that forgets the channel
    reversal. TensorFlow is fed the image preprocessed by engine.images, as the options say, so every
    target must fail. (Before, TensorFlow ran the same baked graph on the raw pixels and agreed.)"""
    from engine import prepare
    from engine.convert import convert
    from engine.options import ConversionOptions

    right = prepare._preprocess
    monkeypatch.setattr(prepare, "_preprocess", lambda tf, x, mean, scale, reverse: right(tf, x, mean, scale, False))
    options = ConversionOptions(model=str(CLASSIFIER), targets=("onnx", "tflite"), output_dir=str(tmp_path / "wrong"),
                                preset="inception", reverse_input_channels=True, sample_inputs=(("image", str(photo)),))
    report = convert(options, lambda *a, **k: None)
    for t in report.targets:
        assert t.status == "mismatch", (t.target, t.verification)
        assert t.verification["outputs"]["probs"]["max_abs_diff"] > 1e-3

    monkeypatch.setattr(prepare, "_preprocess", right)  # the same run with the real formula passes
    report = convert(options.replace(output_dir=str(tmp_path / "right")), lambda *a, **k: None)
    assert [t.status for t in report.targets] == ["ok", "ok"], [t.verification for t in report.targets]


@pytest.mark.timeout(120)
def test_jpeg_and_png_decode_to_the_input_size_and_channels(tmp_path):
    from engine.inspect import TensorInfo
    from engine.options import ConversionOptions
    from engine.prepare import import_tensorflow
    from engine.sample_inputs import load

    tf = import_tensorflow()
    pixels = photo_like(64, 48)
    write_png(tmp_path / "p.png", pixels)
    (tmp_path / "p.jpg").write_bytes(tf.io.encode_jpeg(pixels, quality=95).numpy())
    for channels, dtype in ((3, "float32"), (1, "uint8")):
        inputs = [TensorInfo("image", dtype, [-1, 32, 24, channels])]
        options = ConversionOptions(model="m", targets=("onnx",), output_dir="o",
                                    sample_inputs=(("", str(tmp_path / "p.png")), ("image", str(tmp_path / "p.jpg"))))
        feeds = load(tf, options, inputs)["image"]
        assert feeds.shape == (2, 32, 24, channels) and feeds.dtype == np.dtype(dtype)
        assert 0 <= feeds.min() and feeds.max() <= 255
        assert np.abs(feeds[0].astype(float) - feeds[1]).mean() < 8  # the same picture, JPEG's loss aside
    halved = pixels.reshape(32, 2, 24, 2, 3).mean(axis=(1, 3))  # what a 2x antialiased downscale is close to
    assert np.abs(load(tf, options.replace(sample_inputs=(("", str(tmp_path / "p.png")),)),
                       [TensorInfo("image", "float32", [-1, 32, 24, 3])])["image"][0] - halved).mean() < 8


@pytest.mark.timeout(300)
def test_npy_and_npz_inputs_are_used_as_they_are(tmp_path):
    values = np.linspace(-3, 3, 3 * 8, dtype=np.float64).reshape(3, 8)  # float64: cast to the input's float32
    np.save(tmp_path / "x.npy", values)
    np.savez(tmp_path / "x.npz", input=values[:1])
    out = tmp_path / "out"
    proc = run_cli("convert", SAMPLES / "frozen_graph.pb", "--to", "onnx", "-o", out,
                   "--sample-input", tmp_path / "x.npy", "--sample-input", tmp_path / "x.npz", timeout=300)
    assert proc.returncode == 0, proc.stderr
    onnx = json.loads((out / "report.json").read_text())["targets"][0]
    assert onnx["verification"]["passed"]
    assert onnx["verification"]["outputs"]["output"]["shape"] == [4, 4]  # 3 rows + 1 row, 4 classes
    # The reference really was computed on those rows: the converted model gives the same numbers for them.
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "onnx" / "model.onnx"))
    probs = session.run(None, {"input": values.astype(np.float32)})[0]
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5) and probs.shape == (3, 4)


@pytest.mark.timeout(120)
def test_bad_sample_inputs_are_one_line_errors(tmp_path, photo):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "notes.npy").write_text("hello")
    np.save(tmp_path / "x.npy", np.zeros((1, 9), np.float32))  # 9, not 8: found only when read, in the worker
    graph = SAMPLES / "frozen_graph.pb"
    cases = [
        ((graph, "--sample-input", tmp_path / "missing.npy"), ("missing.npy: no such file",)),
        ((graph, "--sample-input", tmp_path / "notes.txt"), (".txt is not a sample input",)),
        ((graph, "--sample-input", f"nope={tmp_path / 'x.npy'}"), ("no input 'nope'", "input")),
        ((graph, "--sample-input", tmp_path / "objects.npy"), ("holds Python objects",)),
        ((graph, "--sample-input", tmp_path / "notes.npy"), ("not a numpy file",)),
        ((graph, "--sample-input", photo), ("does not take an image",)),
        ((SAMPLES / "keras2_functional.h5", "--sample-input", tmp_path / "x.npy"), ("say which input", "a, b")),
        ((graph, "--sample-input", photo, "--no-verify"), ("--no-verify",)),
    ]
    for args, needles in cases:
        assert_clean_error(run_cli("convert", *args, "--to", "onnx", "-o", tmp_path / "o", "--dryrun"), *needles)
    # Shapes are checked in the worker, which reads the arrays: a failed run, nothing written.
    proc = run_cli("convert", graph, "--to", "onnx", "-o", tmp_path / "o", "--sample-input", tmp_path / "x.npy",
                   timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "input 'input' has shape [-1, 8], the file's array [1, 9]; save an array of that shape (-1 dims may be any size)")
    assert not (tmp_path / "o").exists()
    np.save(tmp_path / "a.npy", np.zeros((3, 4), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((1, 4), np.float32))
    proc = run_cli("convert", SAMPLES / "keras2_functional.h5", "--to", "onnx", "-o", tmp_path / "o",
                   "--sample-input", f"a={tmp_path / 'a.npy'}", "--sample-input", f"b={tmp_path / 'b.npy'}", timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].endswith(
        "the inputs get different batch sizes (1, 3); give each input as many samples")
