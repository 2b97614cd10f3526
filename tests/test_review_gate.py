"""Both faces refuse and accept the same answers at Review: the Textual app's Review uses the gate
--plain and `tfwizard convert` use (steps.checked_options), so a dry run never prints a command the
CLI refuses. Once, the app let the mobilenet preset with TF.js layers format through to Run."""

import pytest

from conftest import SAMPLES
from engine.errors import UserError
from test_app import drive, error_text, press
from wizard import steps
from wizard.app import WizardApp

MODEL = str(SAMPLES / "image_classifier.keras")


def answers(tfjs_format):
    a = steps.Answers()
    a.load(MODEL)
    a.preprocessing, a.targets, a.tfjs_format, a.output_dir = "mobilenet", ["tfjs"], tfjs_format, "out"
    return a


@pytest.mark.parametrize("tfjs_format", ["layers", "graph"])
def test_the_apps_review_and_the_plain_gate_agree(tfjs_format, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        expected = steps.checked_options(answers(tfjs_format)).command()
    except UserError as e:
        expected = e
    assert isinstance(expected, UserError) == (tfjs_format == "layers")  # the case is what it says
    app = WizardApp(MODEL, dryrun=True)

    async def script(pilot):
        for key in ("preprocessing", "targets", "tfjs_format", "output_dir"):
            setattr(app.answers, key, getattr(answers(tfjs_format), key))
        app.go("review")
        await pilot.pause()
        await press(pilot, "ctrl+n")  # in a dry run, Next is Print
        if isinstance(expected, UserError):
            assert str(expected) in error_text(app)

    drive(app, script)
    assert app.return_value == (None if isinstance(expected, UserError) else expected)
    assert not (tmp_path / "out").exists()
