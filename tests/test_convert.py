"""Every sample model form converts to every target, and each result matches TensorFlow.

Runs in-process so TensorFlow is imported once for the whole module; each model is
converted once to all targets (one TF load and freeze) and the assertions share it.
"""

import json

import numpy as np
import pytest

from conftest import MANIFEST, SAMPLES, run_cli
from engine import backends
from engine.backends import TARGETS, get
from engine.convert import convert
from engine.options import ConversionOptions

# Models that run code when loaded are converted (with --trust-model) in test_untrusted_models.py.
# Samples of real-world failure classes need their own flags: tests/test_realworld.py converts them.
MODELS = [m for m in MANIFEST if m["format"] != "keras_weights_only" and not m.get("trust_required")
          and not m.get("failure_class") and not m.get("tested_in")]
KERAS_SHAPED = ("keras_h5", "keras_v3", "tfjs_layers")  # the keras target saves their layers; the rest have none


def targets_for(entry) -> tuple[str, ...]:
    return tuple(t for t in TARGETS if t != "keras" or entry["format"] in KERAS_SHAPED)


def fixed_shapes(entry):
    """Unknown-rank inputs need a shape on some targets: give one, as a user would."""
    return tuple((i["name"], (2, 8)) for i in entry["inputs"] if i.get("shape") is None)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    cache = {}

    def get_report(entry):
        if entry["path"] not in cache:
            out = tmp_path_factory.mktemp("convert") / "out"
            options = ConversionOptions(model=str(SAMPLES / entry["path"]), targets=targets_for(entry), output_dir=str(out),
                                        inputs=fixed_shapes(entry))
            cache[entry["path"]] = (convert(options, emit=lambda *a, **k: None), out)
        return cache[entry["path"]]

    return get_report


@pytest.mark.parametrize("entry, target", [(m, t) for m in MODELS for t in targets_for(m)],
                         ids=[f"{t}-{m['path']}" for m in MODELS for t in targets_for(m)])
def test_every_form_to_every_target(converted, entry, target):
    report, out = converted(entry)
    result = {t.target: t for t in report.targets}[target]
    if target in entry.get("fails_on", {}):  # no rung of the ladder works: one line naming the cause
        assert result.status in ("failed", "unsupported") and entry["fails_on"][target] in result.message
        assert "\n" not in result.message and not (out / target).exists()
        return
    assert result.status == "ok", result.message
    assert (out / target / backends.get(target).main_file).is_file()
    assert all((out / f).stat().st_size == size for f, size in result.files.items())
    verification = result.verification
    if "skipped" in verification:
        pytest.skip(verification["skipped"])
    assert verification["passed"], verification
    assert verification["max_abs_diff"] <= 1e-4
    doc = json.loads((out / "report.json").read_text())
    assert doc["schema"] == "tfwizard.report/1" and doc["exit_code"] == (1 if entry.get("fails_on") else 0)
    assert not list(out.parent.glob(".out.tmp-*")), "temporary directory left behind"


def test_quantized_targets_are_verified_relative_to_the_output(tmp_path):
    """Quantized models: max abs and rel diff reported; the tolerance applies to the relative one."""
    from engine.report import format_report

    quantize = {"onnx": "int8", "tfjs": "uint8", "openvino": "fp16", "tflite": "float16"}
    options = ConversionOptions(model=str(SAMPLES / "image_classifier"), targets=targets_for({"format": "saved_model"}),
                                output_dir=str(tmp_path / "q"),
                                quantize=quantize)
    report = convert(options, emit=lambda *a, **k: None)
    assert report.exit_code == 0, [(t.target, t.status, t.message, t.verification) for t in report.targets]
    text = format_report(report, options.output_dir)
    for t in report.targets:
        v = t.verification
        if "skipped" in v:
            continue
        assert v["tolerance_on"] == "max_rel_diff" and v["passed"], v
        assert 0 < v["max_abs_diff"] <= v["max_rel_diff"]  # probabilities: |ref| <= 1
        expected = backends.get(t.target).quantizations[quantize[t.target]].tolerance  # the backend's table
        assert expected.scaled and v["tolerance"] == expected.atol
        assert f"max rel diff {v['max_rel_diff']:.1e} (tolerance rel {v['tolerance']:.0e} + rtol {v['rtol']:.0e}): PASS" in text


def test_output_directory_is_as_readable_as_a_mkdir(tmp_path):
    """The temporary directory is renamed into place: it must not stay private (mkdtemp's 0700)."""
    import os

    out = tmp_path / "out"
    proc = run_cli("convert", SAMPLES / "frozen_graph.pb", "--to", "onnx", "-o", out, "--no-verify")
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "made_by_mkdir").mkdir()
    assert os.stat(out).st_mode & 0o777 == os.stat(tmp_path / "made_by_mkdir").st_mode & 0o777
