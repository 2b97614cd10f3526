"""The target loop (engine.pipeline): one target's failure, even a late UserError that only the
conversion can find, fails that target alone and keeps what the others converted."""

import json

from conftest import SAMPLES, run_cli


def test_a_late_user_error_in_one_target_keeps_the_targets_already_converted(tmp_path):
    # A Keras 3 file converts to ONNX; TF.js layers format finds only after converting that TF.js
    # 4.22 cannot load Keras 3 layers models. This used to end the whole run with exit 2, ONNX discarded.
    out = tmp_path / "out"
    proc = run_cli("convert", SAMPLES / "keras_functional.keras", "--to", "onnx,tfjs", "--tfjs-format", "layers",
                   "-o", out, "--no-verify", timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert (out / "onnx" / "model.onnx").is_file()
    assert not (out / "tfjs").exists()
    report = json.loads((out / "report.json").read_text())
    status = {t["target"]: (t["status"], t["message"]) for t in report["targets"]}
    assert status["onnx"][0] == "ok"
    assert status["tfjs"][0] == "failed" and "Keras 3" in status["tfjs"][1] and "--tfjs-format graph" in status["tfjs"][1]
    assert "Traceback" not in proc.stderr
