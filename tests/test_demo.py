"""The guided demo runs to completion on the bundled sample, from any working directory."""

import json
import re

from conftest import run_cli
from wizard.steps import DEMO_INTRO, STEPS


def test_demo_ends_with_a_verified_model_and_the_command_that_made_it(tmp_path):
    (tmp_path / "tfwizard-demo").mkdir()  # an earlier demo's output is never replaced
    proc = run_cli("demo", "--yes", cwd=tmp_path, timeout=300)  # sample_models is not next to this cwd
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "tfwizard-demo-2"
    report = json.loads((out / "report.json").read_text())
    assert [t["status"] for t in report["targets"]] == ["ok"]
    assert report["targets"][0]["verification"]["passed"]
    assert (out / "onnx" / "model.onnx").is_file()

    text = re.sub(r"\s*\n\s*\|?\s*", " ", proc.stderr)  # undo the wrapping
    assert DEMO_INTRO in text
    for step in STEPS:
        assert step.teach in text, step.key
    assert "y = (x - 127.5) / 127.5    pixels [0, 255] become [-1, 1]" in proc.stderr  # the Slim example, here
    command = proc.stderr.split("to convert again the same way:\n", 1)[1].splitlines()[0].strip()
    assert command.endswith("--to onnx -o tfwizard-demo-2 --batch 1 --preset inception")
    # The command that ran is the one shown; the child's report also records the progress format
    # the wizard asked for through TFWIZARD_PROGRESS.
    assert report["command"] in (command, command + " --progress json")
