"""Smoke subset (`pytest -m smoke`), run by CI on every supported Python: one sample converted to
every target this install has and verified, and a target whose extra is missing named with its fix
in inspect, convert, --version and the wizard's Graph and Targets steps."""

import json
import subprocess
import sys

import pytest

from conftest import REPO, SAMPLES, assert_clean_error, run_cli
from engine.availability import available, unavailable
from engine.backends import get

pytestmark = pytest.mark.smoke
SAMPLE = SAMPLES / "image_classifier.keras"


def test_sample_converts_to_every_available_target_and_verifies(tmp_path):
    targets = available()
    assert targets, unavailable()
    proc = run_cli("convert", SAMPLE, "--to", ",".join(targets), "-o", tmp_path / "out", timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [t["target"] for t in report["targets"]] == targets
    for t in report["targets"]:
        assert t["status"] == "ok", t
        if t["target"] == "tfjs" and "skipped" in t["verification"]:  # no Node.js on this machine
            continue
        assert t["verification"]["passed"] and t["verification"]["max_abs_diff"] <= 1e-4, t


def test_a_target_this_python_cannot_install_is_named_everywhere():
    """On Python 3.13 TF.js can't install (tensorflowjs needs TF 2.19); elsewhere every target is there."""
    missing = unavailable()
    if sys.version_info >= (3, 13):
        assert "tfjs" in missing and "use Python 3.12 or older" in missing["tfjs"]
    assert set(missing) <= {"tfjs"} or sys.version_info < (3, 13), missing
    doc = json.loads(run_cli("inspect", "--json", SAMPLE).stdout)
    assert doc["available_targets"] == available() and doc["unavailable"] == missing


def _without(module: str, code: str) -> subprocess.CompletedProcess:
    """Run `code` in a Python where `module` can't be found (as if its extra were not installed):
    sys.modules[name] = None is the import system's own 'not importable' mark, which find_spec honours."""
    prelude = f"import sys; sys.modules[{module!r}] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def _main(*argv) -> str:
    return f"from wizard.cli import main; sys.exit(main({[str(a) for a in argv]!r}))"


@pytest.mark.parametrize("target", ["openvino", "onnx"])
def test_missing_extra_is_a_verdict_with_its_fix(target, tmp_path):
    module, fix = get(target).modules[-1], f"pip install 'tfwizard[{target}]'"
    title = get(target).label

    doc = json.loads(_without(module, _main("inspect", "--json", SAMPLE)).stdout)
    assert target not in doc["available_targets"]
    assert doc["unavailable"][target] == f"{title}: not installed (no module {module}) — {fix}"
    text = _without(module, _main("inspect", SAMPLE)).stdout
    assert f"  ! {title}: not installed (no module {module}) — {fix}" in text.splitlines()

    out = tmp_path / "out"
    line = assert_clean_error(_without(module, _main("convert", SAMPLE, "--to", f"tflite,{target}", "-o", out)),
                              f"{title}: not installed", fix)
    assert line.startswith("tfwizard: error: --to tflite,")
    assert not out.exists()

    version = _without(module, _main("--version"))
    assert version.returncode == 0 and f"{title}: not installed" in version.stdout

    wizard = _without(module, f"""
from engine.detect import detect
from engine.inspect import inspect
from wizard import steps
info = inspect(detect({str(SAMPLE)!r}))
a = steps.Answers(); a.adopt({str(SAMPLE)!r}, info)
print(dict((t, text) for t, _, text in steps.preflight_verdicts(info) if _ == "blocked"))
q = steps.questions("targets", a)[0]
print(dict(q.choices)[{target!r}]); print(q.validate([{target!r}])); print(q.validate(["tflite"]))
""")
    graph, choice, refused, accepted = wizard.stdout.splitlines()[-4:]
    assert f"not installed (no module {module}) — {fix}" in graph  # the Graph step's verdict
    assert choice == refused == f"{title}: not installed (no module {module}) — {fix}"  # Targets step
    assert accepted == "None"
