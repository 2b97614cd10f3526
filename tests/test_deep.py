"""`tfwizard inspect --deep`: the frozen graph as convert sees it, from the CLI, the plain flow and the app.

Every run here uses its own cache directory (XDG_CACHE_HOME), never ~/.cache. The CLI runs are shared
per module: one TensorFlow start per model.
"""

import asyncio
import io
import json
import time
import zipfile

import h5py
import pytest

from engine.backends import TARGETS
from conftest import SAMPLES, assert_clean_error, run_cli
from test_trust import hostile, tf  # noqa: F401  (module-scoped fixtures: models that write a file)

pytestmark = pytest.mark.timeout(300)
KERAS = SAMPLES / "image_classifier.keras"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("xdg-cache")


def deep(model, cache, *args):
    proc = run_cli("inspect", "--deep", model, "--json", *args, env={"XDG_CACHE_HOME": str(cache)}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def keras_deep(cache):
    return deep(KERAS, cache)


@pytest.fixture(scope="module")
def saved_model_deep(cache):
    return deep(SAMPLES / "saved_model_tf2", cache)


def keras_float_weights(path) -> int:
    """Elements of the float32 weights stored in a .keras file (read with h5py, not TensorFlow)."""
    count = 0
    with zipfile.ZipFile(path) as z, h5py.File(io.BytesIO(z.read("model.weights.h5"))) as f:
        def visit(_, obj):
            nonlocal count
            if isinstance(obj, h5py.Dataset) and obj.dtype == "float32":
                count += obj.size
        f.visititems(visit)
    return count


def test_keras_json_describes_the_frozen_graph(keras_deep):
    d = keras_deep
    assert d["schema"] == "tfwizard.deep/1" and d["format"] == "keras_v3" and d["cached"] is False
    # Keras layers became TF ops: the targets' op lists can judge them.
    assert {"Conv2D", "MatMul", "Softmax", "Placeholder"} <= set(d["ops"]) and "Dense" not in d["ops"]
    assert d["outputs"] == [{"name": "probs", "dtype": "float32", "shape": [-1, 10]}]  # inspect alone says [?]
    assert d["inputs"][0]["name"] == "image"
    for target in ("onnx", "tfjs", "openvino"):
        assert d["targets"][target] == {"verdict": "ok", "blocked": {}, "maybe": {}, "strategy": "frozen graph"}
    assert d["targets"]["tflite"]["verdict"] == "unknown"  # TFLite has no op list; its converter decides
    assert set(d["available_targets"]) | set(d["unavailable"]) == set(TARGETS)
    weights = d["weight_bytes"]
    assert weights["float32_weights"] == keras_float_weights(KERAS)  # every weight, and nothing else
    sizes = weights["by_quantization"]
    assert sizes["onnx"]["none"] == 4 * weights["float32_weights"] + weights["other"]
    assert sizes["onnx"]["none"] > sizes["onnx"]["float16"] == sizes["tfjs"]["float16"] > sizes["onnx"]["int8"]
    assert set(sizes["tflite"]) == {"none", "dynamic", "float16"}


def test_a_second_visit_comes_from_the_cache_at_once(keras_deep, cache, tmp_path):
    copy = tmp_path / "renamed.keras"  # the key is the content, not the name
    copy.write_bytes(KERAS.read_bytes())
    t0 = time.perf_counter()
    again = deep(copy, cache)
    assert again["cached"] is True and time.perf_counter() - t0 < 5  # no TensorFlow: a Python start
    assert again["ops"] == keras_deep["ops"] and again["targets"] == keras_deep["targets"]
    text = run_cli("inspect", "--deep", copy, env={"XDG_CACHE_HOME": str(cache)})
    assert text.returncode == 0 and "(cached)" in text.stdout and "probs: float32 [-1, 10]" in text.stdout


def test_saved_model_verdicts_come_from_its_frozen_inference_graph(saved_model_deep):
    d = saved_model_deep
    assert d["format"] == "saved_model"
    assert not {"VarHandleOp", "ReadVariableOp", "StatefulPartitionedCall", "SaveV2", "RestoreV2"} & set(d["ops"])
    assert all(o["dtype"] and o["shape"] is not None for o in d["outputs"])
    assert d["targets"]["onnx"]["verdict"] == "ok" and d["targets"]["onnx"]["strategy"] == "frozen graph"


def test_a_model_that_runs_code_is_not_loaded_without_trust(cache):
    proc = run_cli("inspect", "--deep", SAMPLES / "keras_lambda.keras", "--json", env={"XDG_CACHE_HOME": str(cache)})
    assert_clean_error(proc, "--trust-model")
    assert_clean_error(run_cli("inspect", "--trust-model", KERAS), "--deep")


def test_plain_flow_shows_the_analysis_at_the_targets_question(keras_deep, cache, tmp_path):
    cold = run_cli("--plain", "--yes", "--dryrun", KERAS, env={"XDG_CACHE_HOME": str(tmp_path / "empty")})
    assert cold.returncode == 0, cold.stderr
    assert "analysing with TensorFlow… 0 s; not ready yet" in cold.stderr  # never waited for
    warm = run_cli("--plain", "--yes", "--dryrun", KERAS, env={"XDG_CACHE_HOME": str(cache)})
    assert warm.returncode == 0, warm.stderr
    targets = warm.stderr[warm.stderr.index("Targets"):]
    assert "with TensorFlow, on the frozen graph: (cached)" in targets and "output probs: float32 [-1, 10]" in targets
    assert "every frozen op supported · strategy: frozen graph" in targets
    assert warm.stdout == cold.stdout  # the command does not depend on it


def test_the_app_shows_pending_then_the_frozen_graphs_verdicts(tmp_path, monkeypatch):
    from textual.widgets import DataTable, Static

    from pilot import analysed, press, settle
    from wizard.app import WizardApp

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # cold: TensorFlow really runs
    monkeypatch.chdir(tmp_path)
    app = WizardApp(str(KERAS))
    seen = {}

    def verdicts():
        return [str(s.render()) for s in app.screen.query("Verdicts Static")]

    async def main():
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await press(pilot, "ctrl+n")
            assert app.screen.STEP == "graph"
            seen["pending"] = verdicts()
            seen["pending shape"] = app.screen.query_one("#outputs", DataTable).get_row("probs")[2]
            await analysed(pilot)
            seen["final"] = verdicts()
            seen["final shape"] = app.screen.query_one("#outputs", DataTable).get_row("probs")[2]
            await press(pilot, "ctrl+n", "ctrl+n", "ctrl+n")
            assert app.screen.STEP == "targets"
            seen["targets"] = verdicts()
            await press(pilot, "ctrl+p", "ctrl+p", "ctrl+p", "ctrl+p")  # back to Model
            assert app.screen.STEP == "model" and app.analysis.result is not None  # an answer is kept
            seen["command"] = app.answers.options().command()

    asyncio.run(main())
    # (keras saves the model as it is: nothing to wait for)
    assert all("analysing with TensorFlow…" in line for line in seen["pending"] if "Keras:" not in line), seen["pending"]
    assert seen["pending shape"] == "[?]" and seen["final shape"] == "[-1,10]"
    assert "✔ ONNX: every frozen op supported · strategy: frozen graph" in seen["final"]
    assert seen["targets"] == seen["final"]
    assert "inspect" not in seen["command"] and seen["command"].startswith("tfwizard convert")


def test_going_back_to_model_kills_the_analysis(tmp_path, monkeypatch):
    from pilot import press, settle
    from wizard.app import WizardApp

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    app = WizardApp(str(SAMPLES / "keras_sequential.keras"))
    seen = {}

    async def main():
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await press(pilot, "ctrl+n")
            while app.analysis.process is None:  # the child has started (after the cache lookup)
                await pilot.pause(0.05)
            seen["process"] = app.analysis.process
            await press(pilot, "ctrl+p")
            assert app.screen.STEP == "model"
            seen["code"] = await asyncio.get_running_loop().run_in_executor(None, seen["process"].wait, 30)

    asyncio.run(main())
    assert seen["code"] != 0 and app.analysis.cancelled and app.analysis.result is None
    assert not list((tmp_path / "cache").glob("tfwizard/deep/*.json"))  # nothing half-cached



def test_deep_follows_converts_trust_rules(hostile, cache):
    """Refused by the static scan without --trust-model; with it, the sandbox still stops the write."""
    from engine.sandbox import abi_version

    env = {"XDG_CACHE_HOME": str(cache)}
    assert_clean_error(run_cli("inspect", "--deep", hostile["saved"], "--json", env=env), "--trust-model")
    if not abi_version():
        pytest.skip("no Landlock on this kernel")
    proc = run_cli("inspect", "--deep", hostile["saved"], "--json", "--trust-model", env=env, timeout=300)
    assert "the sandbox forbids" in assert_clean_error(proc, "Permission denied")
    assert not hostile["target"].exists()
    assert not list(cache.glob("tfwizard/deep/*.json")) or all(
        json.loads(p.read_text())["model"] != str(hostile["saved"]) for p in cache.glob("tfwizard/deep/*.json"))
