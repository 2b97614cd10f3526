"""The loading snippets the Result step shows (each backend's snippet()) run as printed: each is pasted
into a real interpreter (Python for onnxruntime, OpenVINO and LiteRT, Node for TF.js) on a real
conversion of a sample, and prints the shapes of the model's outputs. --benchmark rides along on the
same conversion (report.json's `benchmark` block, the convert summary's table)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import SAMPLES, run_cli
from engine.backends import TARGETS
from engine.options import ConversionOptions
from wizard.steps import outcomes


def _run_snippet(target: str, code: str, where) -> str:
    if target != "tfjs":
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=where, timeout=300)
    else:
        from engine.backends.tfjs import _tfjs_modules

        (where / "node_modules").symlink_to(_tfjs_modules())  # as after `npm install @tensorflow/tfjs` here
        (where / "snippet.mjs").write_text(code)
        proc = subprocess.run(["node", "snippet.mjs"], capture_output=True, text=True, cwd=where, timeout=300)
    assert proc.returncode == 0, (target, code, proc.stderr[-2000:])
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """keras2_functional.h5 (inputs a, b [-1, 4] → out [-1, 2]) to every target, timed."""
    out = tmp_path_factory.mktemp("snip") / "out"
    proc = run_cli("convert", SAMPLES / "keras2_functional.h5", "--to", ",".join(TARGETS), "-o", out,
                   "--benchmark", "--benchmark-runs", "20", timeout=900)
    assert proc.returncode == 0, proc.stderr
    return out, proc


@pytest.mark.timeout(900)
def test_every_loading_snippet_runs_as_printed(converted, tmp_path):
    out, _ = converted
    report = json.loads((out / "report.json").read_text())
    # the options of that conversion (the keras snippet reads which Keras wrote the model)
    options = ConversionOptions(model=str(SAMPLES / "keras2_functional.h5"), targets=TARGETS, output_dir=str(out))
    shown = outcomes(report, options)
    assert [o.target for o in shown] == list(TARGETS)
    for o in shown:
        assert '"a"' in o.snippet and '"b"' in o.snippet and "[1, 4]" in o.snippet, o.snippet  # the real inputs
        where = tmp_path / o.target
        where.mkdir()
        printed = _run_snippet(o.target, o.snippet, where)
        assert "[1,2]" in printed.replace(" ", "") or "(1,2)" in printed.replace(" ", ""), (o.target, printed)


@pytest.mark.timeout(600)
def test_the_layers_model_snippet_runs_too(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("convert", SAMPLES / "keras2_functional.h5", "--to", "tfjs", "--tfjs-format", "layers", "-o", out,
                   "--no-verify", timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    (o,) = outcomes(report, ConversionOptions(model="m", targets=("tfjs",), output_dir=str(out), tfjs_format="layers"))
    assert "loadLayersModel" in o.snippet
    where = tmp_path / "run"
    where.mkdir()
    assert "[1,2]" in _run_snippet("tfjs", o.snippet, where).replace(" ", "")


def test_benchmark_block_and_table(converted):
    out, proc = converted
    bench = json.loads((out / "report.json").read_text())["benchmark"]
    assert bench["batch"] == 1 and bench["inputs"] == {"a": [1, 4], "b": [1, 4]}
    rows = {r["target"]: r for r in bench["rows"]}
    assert list(rows) == ["tensorflow", *TARGETS]
    for name, r in rows.items():
        assert r["runs"] == 20 and r["warmup"] == 5 and 0 < r["median_ms"] <= r["p90_ms"], r
        assert r["threads"] == (1 if name == "tfjs" else len(os.sched_getaffinity(0))) and r["bytes"] > 0
    assert rows["onnx"]["bytes"] == sum(v for k, v in json.loads((out / "report.json").read_text())["targets"][0]["files"].items())
    assert "median" in proc.stdout and "onnxruntime (CPU)" in proc.stdout and "TF.js in Node (cpu)" in proc.stdout
    assert "median and p90 of 20 runs after 5 warm-up" in proc.stdout
