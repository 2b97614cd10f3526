"""The full-screen wizard, driven by Textual's Pilot with the keyboard only, on the sample models.

Waits are on the app (pending messages, workers, the conversion child), never on the clock.
The snapshot tests at the end keep an SVG of every screen at 80x24 in tests/__snapshots__/;
after a deliberate change to a screen, review and accept them with `pytest --snapshot-update`.
"""

import asyncio
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, SAMPLES
from textual.widgets import DataTable, Input, Static

from wizard import steps
from wizard.app import PathSuggester, WizardApp
from pilot import analysed, press, settle
from wizard.screens import Progress, RunScreen

SIZE = (80, 24)


def drive(app: WizardApp, script) -> None:
    """Run `script(pilot)` against `app` in a headless terminal of 80x24."""

    async def main():
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await script(pilot)

    asyncio.run(main())


async def type_into(pilot, text: str) -> None:
    """Replace the focused input's text, as a person would: go home, delete to the end, type."""
    await press(pilot, "home", "ctrl+k", *text)


def error_text(app) -> str:
    return str(app.screen.query_one("#error", Static).render())


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_forward_and_back_through_every_step_keeps_the_answers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = WizardApp(str(SAMPLES / "image_classifier"))

    async def script(pilot):
        seen = [app.screen.STEP]
        for _ in range(5):
            if app.screen.STEP == "shapes":
                await type_into(pilot, "1")  # the batch field has focus
            await press(pilot, "ctrl+n")
            seen.append(app.screen.STEP)
        assert seen == ["model", "graph", "shapes", "preprocess", "targets", "review"]
        for expected in reversed(seen[:-1]):
            await press(pilot, "ctrl+p")
            assert app.screen.STEP == expected
        await press(pilot, "ctrl+n", "ctrl+n")
        assert app.screen.query_one("#q0", Input).value == "1"
        assert "--batch 1" in app.answers.options().command()

    drive(app, script)


def keys(app) -> str:
    """The key line at the bottom of the current screen, as text."""
    from wizard.app import KeyLine

    return str(app.screen.query_one(KeyLine).render())


def test_the_key_line_shows_each_screens_keys_and_a_click_presses_one(tmp_path, monkeypatch):
    from wizard.app import KeyLine

    monkeypatch.chdir(tmp_path)
    app = WizardApp(str(SAMPLES / "image_classifier"))

    async def script(pilot):
        assert keys(app) == " ^n Next  ^p Back  ^q Quit "
        await pilot.click(KeyLine, offset=(2, 0))  # on "^n"
        await settle(pilot)
        assert app.screen.STEP == "graph"
        await press(pilot, *["ctrl+n"] * 4)
        assert app.screen.STEP == "review" and keys(app) == " ^n Next  ^p Back  ^y Copy command  ^q Quit "
        await pilot.click(KeyLine, offset=(10, 0))  # on "^p Back"
        await settle(pilot)
        assert app.screen.STEP == "targets"

    drive(app, script)


def test_invalid_answers_are_explained_in_place_and_block_next(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = WizardApp(str(SAMPLES / "image_classifier"))

    async def script(pilot):
        await press(pilot, "ctrl+n", "ctrl+n")
        assert app.screen.STEP == "shapes"
        await type_into(pilot, "x")
        await press(pilot, "ctrl+n")
        assert app.screen.STEP == "shapes"
        assert "batch 'x': must be a positive integer" in error_text(app)
        await type_into(pilot, "2")
        await press(pilot, "tab")  # to the shape of `image`
        await type_into(pilot, "1,-2,32,3")
        await press(pilot, "ctrl+n")
        assert app.screen.STEP == "shapes"
        assert "dimension '-2' is not a positive integer" in error_text(app)
        await type_into(pilot, "-1,64,64,3")
        await press(pilot, "ctrl+n")
        assert app.screen.STEP == "preprocess"
        command = app.answers.options().command()
        assert "--batch 2" in command and "--input 'image[-1,64,64,3]'" in command

    drive(app, script)


def test_path_completion_completes_relative_home_and_absolute_paths(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "model.pb").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    suggest = PathSuggester().get_suggestion
    assert asyncio.run(suggest("mode")) == "model.pb"  # the first match, in sorted order
    assert asyncio.run(suggest("models/..")) is None
    assert asyncio.run(suggest("model.pb")) is None
    assert asyncio.run(suggest(str(tmp_path / "model."))) == str(tmp_path / "model.pb")
    assert asyncio.run(suggest("/" + tmp_path.parts[1][:2])) == "/" + tmp_path.parts[1] + "/"


def test_a_bad_pick_is_explained_in_place(tmp_path, monkeypatch):
    (tmp_path / "notes.pb").write_bytes(b"\x00\xff not a graph")
    monkeypatch.chdir(tmp_path)
    app = WizardApp()

    async def script(pilot):
        await type_into(pilot, "notes.pb")
        detection = str(app.screen.query_one("#detection", Static).render())
        assert detection.startswith("✘") and "notes.pb" in detection
        await press(pilot, "ctrl+n")
        assert app.screen.STEP == "model"
        assert "notes.pb" in error_text(app)
        await type_into(pilot, str(SAMPLES / "frozen_graph.pb"))
        assert str(app.screen.query_one("#detection", Static).render()).startswith("✔ frozen GraphDef (binary)")
        await press(pilot, "ctrl+n")
        assert app.screen.STEP == "graph"

    drive(app, script)


def test_tag_choice_reloads_the_graph_and_reaches_the_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = WizardApp(str(SAMPLES / "saved_model_tf1"))

    async def script(pilot):
        await press(pilot, "ctrl+n")
        assert app.screen.STEP == "graph"
        await press(pilot, "enter", "down", "enter")  # open the tag picker, take the second tag set
        assert app.answers.tag == "serve,gpu" and app.answers.info.tag == ["serve", "gpu"]
        await press(pilot, "ctrl+n", "ctrl+n", "ctrl+n", "ctrl+n")
        assert "--tag serve,gpu" in app.answers.options().command()

    drive(app, script)


def test_signature_choice_shows_that_signatures_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = WizardApp(str(SAMPLES / "saved_model_tf2"))

    async def script(pilot):
        await press(pilot, "ctrl+n")
        assert app.answers.signature == "serving_default"
        await press(pilot, "enter", "up", "enter")  # signatures are listed sorted: scale, serving_default
        assert app.answers.signature == "scale"
        table = app.screen.query_one("#inputs", DataTable)
        names = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]  # rich Text: shown escaped
        assert names == [i.name for i in app.answers.info.inputs]
        assert "--signature scale" in app.answers.options().command()

    drive(app, script)


def test_preset_selection_shows_the_formula_and_sets_the_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = WizardApp(str(SAMPLES / "image_classifier.keras"))

    async def script(pilot):
        await press(pilot, "ctrl+n", "ctrl+n", "ctrl+n")
        assert app.screen.STEP == "preprocess"
        await press(pilot, "enter", "down", "down", "enter")  # none → inception → mobilenet
        preview = str(app.screen.query_one("#preview", Static).render())
        assert "(x - 127.5) / 127.5" in preview and "[-1, 1]" in preview
        await press(pilot, "tab", "space")  # reverse channels
        assert "x[..., ::-1]" in str(app.screen.query_one("#preview", Static).render())
        await press(pilot, "ctrl+n", "ctrl+n")
        assert "--preset mobilenet --reverse-input-channels" in app.answers.options().command()

    drive(app, script)


def test_dryrun_print_returns_the_engine_command_for_the_same_choices(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = WizardApp(str(SAMPLES / "frozen_graph.pb"), dryrun=True)

    async def script(pilot):
        await press(pilot, "ctrl+n", "ctrl+n")
        await type_into(pilot, "4")
        await press(pilot, "ctrl+n", "ctrl+n")
        assert app.screen.STEP == "targets"
        await press(pilot, "down", "space")  # also TF.js
        await press(pilot, "ctrl+n")
        assert app.screen.STEP == "review"
        await type_into(pilot, "out dir")
        upstream = str(app.screen.query_one("#upstream", Static).render())
        assert "--output 'out dir/onnx/model.onnx'" in upstream, upstream  # follows the directory too
        await press(pilot, "ctrl+n")  # in a dry run, Next is Print

    drive(app, script)
    expected = steps.Answers()
    expected.load(str(SAMPLES / "frozen_graph.pb"))
    expected.batch, expected.targets, expected.output_dir = "4", ["onnx", "tfjs"], "out dir"
    assert app.return_value == expected.options().command()
    assert app.return_value == f"tfwizard convert {SAMPLES / 'frozen_graph.pb'} --to onnx,tfjs -o 'out dir' --batch 4"
    assert not (tmp_path / "out dir").exists()


def test_dryrun_prints_only_the_command_on_stdout(tmp_path):
    """The real program in a terminal (a pty for keys and screen), stdout a pipe: `cmd=$(tfwizard --dryrun m)`."""
    import pty

    master, slave = pty.openpty()
    os.set_blocking(master, False)
    proc = subprocess.Popen([sys.executable, "-m", "wizard", "--dryrun", str(SAMPLES / "frozen_graph.pb")],
                            stdin=slave, stderr=slave, stdout=subprocess.PIPE, cwd=tmp_path,
                            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"})
    os.close(slave)
    screen = b""

    def read() -> None:
        nonlocal screen
        try:
            screen += os.read(master, 65536)
        except (BlockingIOError, OSError):  # OSError: the program closed the terminal (it exited)
            import select

            select.select([master], [], [], 0.2)

    def wait_for(text: bytes) -> None:
        while text not in screen:
            assert proc.poll() is None, screen[-2000:]
            read()

    try:
        for marker in (b"Model path", b"Inputs", b"Batch size", b"What the converted", b"Convert to", b"The command"):
            wait_for(marker)
            os.write(master, b"\x0e")  # ctrl+n
        # Go on reading the terminal, as a terminal does: an unread pty fills up, and the app's last
        # screen writes then block its exit (its writer thread waits on the full pty; seen as a hang).
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            read()
        out, _ = proc.communicate(timeout=5)
    finally:
        proc.kill()
        os.close(master)
    assert proc.returncode == 0
    assert out.decode() == f"tfwizard convert {SAMPLES / 'frozen_graph.pb'} --to onnx -o frozen_graph_converted\n"
    assert list(tmp_path.iterdir()) == []


def test_full_run_converts_and_shows_a_passing_verification_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = WizardApp(str(SAMPLES / "image_classifier.keras"))

    async def script(pilot):
        await press(pilot, *["ctrl+n"] * 5)
        assert app.screen.STEP == "review"
        await pilot.press("ctrl+n")  # Run
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        assert "esc Cancel" in keys(app)  # seconds before the child can have imported TensorFlow
        await settle(pilot)  # the run's worker returns when the child has exited
        assert app.conversion.returncode == 0
        assert "Cancel" not in keys(app)  # nothing left to cancel
        assert [str(c) for c in app.screen.query_one("#targets", DataTable).get_row_at(0)][-1] == "pass"
        await press(pilot, "enter")  # the focused Results button
        assert app.screen.STEP == "result"
        table = app.screen.query_one("#results", DataTable)
        assert [str(c) for c in table.get_row_at(0)][:2] == ["ONNX", "ok"]
        assert str(table.get_row_at(0)[-1]) == "pass"
        app.screen.query_one("#netron-onnx NavButton").focus()
        await press(pilot, "enter")  # View in Netron: the converted model
        url = str(app.screen.query_one("#netron-onnx Static").render())
        assert url.startswith("http://127.0.0.1:")
        assert fetch(url + "/data/model.onnx") == (tmp_path / "image_classifier_converted/onnx/model.onnx").read_bytes()
        await press(pilot, "ctrl+p")  # back to the review: quitting there still reports the finished run
        assert app.screen.STEP == "review"
        await press(pilot, "ctrl+q")

    drive(app, script)
    assert app.return_value == 0
    assert (tmp_path / "image_classifier_converted" / "onnx" / "model.onnx").is_file()
    assert app.report["targets"][0]["verification"]["passed"] is True


def test_cancel_during_the_run_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = WizardApp(str(SAMPLES / "frozen_graph.pb"))

    async def script(pilot):
        await press(pilot, *["ctrl+n"] * 5)
        await pilot.press("ctrl+n")  # Run; not settle(): that would wait for the whole conversion
        screen = app.screen
        assert isinstance(screen, RunScreen)
        while screen.run.process is None:
            await pilot.pause()  # until the child is started
        await pilot.press("escape")
        await settle(pilot)
        assert screen.run.cancelled and screen.run.returncode is not None
        assert "Cancelled: nothing was written" in error_text(app)
        await press(pilot, "ctrl+p")
        assert app.screen.STEP == "review"

    drive(app, script)
    assert list(tmp_path.iterdir()) == []


def test_graph_step_outlines_the_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = WizardApp(str(SAMPLES / "image_classifier.keras"))

    async def script(pilot):
        await press(pilot, "ctrl+n")
        outline = str(app.screen.query_one("#outline", Static).render()).splitlines()
        assert outline[0].startswith("in   image  float32") and outline[-1].startswith("out  probs")
        assert "conv" in outline[1] and "Conv2D" in outline[1]

    drive(app, script)


def test_netron_shows_the_model_on_loopback_until_the_app_ends(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from wizard import view

    app = WizardApp(str(SAMPLES / "image_classifier.keras"))
    served, calls, serve, answer = [], [], view.serve, threading.Event()

    def slow_serve(path):  # the real server, once the test lets it answer
        calls.append(path)
        answer.wait(30)
        return serve(path)

    monkeypatch.setattr(view, "serve", slow_serve)

    async def script(pilot):
        await press(pilot, "ctrl+n")
        await pilot.click("#netron NavButton")
        await pilot.press("ctrl+n")  # away and back before Netron has answered: still one server
        await pilot.press("ctrl+p")
        assert str(app.screen.query_one("#netron Static").render()) == "starting Netron…"
        await pilot.click("#netron NavButton")
        answer.set()
        await settle(pilot)
        assert len(calls) == 1
        url = str(app.screen.query_one("#netron Static").render())
        assert url.startswith("http://127.0.0.1:") and app.netron == {app.answers.model: url}
        assert fetch(url + "/data/image_classifier.keras") == (SAMPLES / "image_classifier.keras").read_bytes()
        await pilot.click("#netron NavButton")  # again, or back and forth: the same server
        await press(pilot, "ctrl+n", "ctrl+p")
        assert app.netron == {app.answers.model: url} and str(app.screen.query_one("#netron Static").render()) == url
        served.append(url)

    drive(app, script)
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # the app stopped it on its way out
        fetch(served[0])


def test_netron_trouble_is_shown_beside_the_button(tmp_path, monkeypatch):
    model = tmp_path / "model.keras"
    model.write_bytes((SAMPLES / "image_classifier.keras").read_bytes())
    monkeypatch.chdir(tmp_path)
    app = WizardApp(str(model))

    async def script(pilot):
        await press(pilot, "ctrl+n")
        model.unlink()  # gone since it was read
        await pilot.click("#netron NavButton")
        await settle(pilot)
        assert str(app.screen.query_one("#netron Static").render()).startswith("✘ ")
        assert app.netron == {} and not app.screen.query_one("#netron NavButton").disabled

    drive(app, script)


# --- snapshots: every screen at 80x24 -------------------------------------------------------------------

FAKE_REPORT = {  # a report shaped like report.json, so the Result screen's layout can be pinned down
    "command": "tfwizard convert image_classifier.keras --to onnx,tflite -o image_classifier_converted",
    "exit_code": 0,
    "targets": [
        {"target": "onnx", "status": "ok", "message": "", "files": {"onnx/model.onnx": 3366}, "seconds": 0.4,
         "verification": {"max_abs_diff": 1.5e-8, "max_rel_diff": 1.1e-7, "tolerance": 1e-4, "passed": True}},
        {"target": "tflite", "status": "ok", "message": "", "files": {"tflite/model.tflite": 5120}, "seconds": 0.3,
         "verification": {"max_abs_diff": 2.9e-8, "max_rel_diff": 2.0e-7, "tolerance": 1e-4, "passed": True}},
    ],
    "interface": {"inputs": [{"name": "image", "dtype": "float32", "shape": [-1, 32, 32, 3]}], "outputs": ["probs"]},
    "benchmark": {"batch": 1, "inputs": {"image": [1, 32, 32, 3]}, "rows": [
        {"target": "tensorflow", "runtime": "TensorFlow", "bytes": 23400, "threads": 2, "median_ms": 0.21, "p90_ms": 0.3,
         "runs": 50, "warmup": 5},
        {"target": "onnx", "runtime": "onnxruntime (CPU)", "bytes": 3366, "threads": 2, "median_ms": 0.06, "p90_ms": 0.07,
         "runs": 50, "warmup": 5},
        {"target": "tflite", "runtime": "LiteRT interpreter", "bytes": 5120, "threads": 2, "median_ms": 0.02,
         "p90_ms": 0.03, "runs": 50, "warmup": 5}]},
}


@pytest.fixture
def in_samples(monkeypatch):
    monkeypatch.chdir(SAMPLES)  # the Model screen lists the working directory


@pytest.mark.parametrize("step", ["model", "graph", "shapes", "preprocess", "targets", "review"])
def test_snapshot_steps(step, snap_compare, in_samples):
    async def run_before(pilot):
        await settle(pilot)
        if step != "model":  # the frozen graph's verdicts: a picture that does not depend on the clock
            await analysed(pilot)  # (the Model step shows none; waiting there lets its cursor blink)
        await press(pilot, *["ctrl+n"] * steps.STEP_KEYS.index(step))

    assert snap_compare(WizardApp("image_classifier.keras"), run_before=run_before, terminal_size=SIZE)


def test_snapshot_run(snap_compare, in_samples, monkeypatch):
    monkeypatch.setattr(RunScreen, "on_mount", lambda self: None)  # show the screen, start no child

    async def run_before(pilot):
        await press(pilot, *["ctrl+n"] * 6)
        for event in ({"event": "stage", "stage": "import", "message": "importing TensorFlow"},
                      {"event": "stage", "stage": "load", "message": "loading and freezing the model"},
                      {"event": "stage", "stage": "convert", "target": "onnx", "message": "converting to ONNX"}):
            pilot.app.screen.post_message(Progress(event))
        await settle(pilot)

    assert snap_compare(WizardApp("image_classifier.keras"), run_before=run_before, terminal_size=SIZE)


def test_snapshot_result(snap_compare, in_samples):
    async def run_before(pilot):
        await press(pilot, *["ctrl+n"] * 5)
        pilot.app.report = FAKE_REPORT
        pilot.app.answers.targets = ["onnx", "tflite"]
        pilot.app.go("result")
        await settle(pilot)

    assert snap_compare(WizardApp("image_classifier.keras"), run_before=run_before, terminal_size=SIZE)


def test_the_guided_demo_entry_explains_each_step_and_loads_the_sample(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = WizardApp()

    async def script(pilot):
        await pilot.click("#demo")
        await settle(pilot)
        assert app.teaching and app.screen.STEP == "model"
        assert steps.DEMO_INTRO[:40] in str(app.screen.query_one(".teach", Static).render())
        await press(pilot, "ctrl+n", "ctrl+n", "ctrl+n")
        assert app.screen.STEP == "preprocess"
        assert steps.STEPS[3].teach[:40] in str(app.screen.query_one(".teach", Static).render())
        assert "--batch 1 --preset inception" in app.answers.options().command()

    drive(app, script)


def test_a_model_that_runs_code_needs_an_explicit_yes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = WizardApp(str(SAMPLES / "keras_lambda.keras"))

    async def script(pilot):
        await press(pilot, "ctrl+n")
        assert app.screen.STEP == "graph"
        await press(pilot, "ctrl+n")
        assert app.screen.STEP == "graph" and "runs that code" in error_text(app)
        assert "--trust-model" not in app.answers.options().command()
        await press(pilot, "space")  # the trust checkbox has focus after the refusal
        await press(pilot, "ctrl+n")
        assert app.screen.STEP == "shapes"
        assert "--trust-model" in app.answers.options().command()

    drive(app, script)


def test_the_readme_screenshot_script_walks_the_steps(tmp_path):
    # --no-convert: the Run and Result pictures need TensorFlow; the full run above covers those screens.
    proc = subprocess.run([sys.executable, str(REPO / "docs" / "screenshots.py"), "--no-convert", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    svg = {p.stem: p.read_text().replace("&#160;", " ") for p in tmp_path.iterdir()}
    assert sorted(svg) == ["graph", "model", "review", "targets"]
    assert "Model path" in svg["model"] and "Outline: inputs" in svg["graph"] and "http://127.0.0.1:" in svg["graph"]
    assert "TFLite: Android" in svg["targets"] and "--to onnx,tflite" in svg["review"]


def test_review_offers_a_check_with_my_own_input_file(tmp_path, monkeypatch):
    from images import photo_like, write_png

    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "photo.png", photo_like(32, 32))
    app = WizardApp(str(SAMPLES / "image_classifier.keras"))

    async def script(pilot):
        await press(pilot, *["ctrl+n"] * 5)
        assert app.screen.STEP == "review"
        assert not app.screen.query("#check")  # closed until asked for
        await pilot.click("#check-open")  # "Check with my own input file, or time each target…"
        await settle(pilot)
        check = app.screen.query_one("#check")
        field = check.query_one("#check-q0", Input)
        assert app.focused is field
        await type_into(pilot, "nope.png")
        await settle(pilot)
        await press(pilot, "ctrl+n")  # Run refuses a file that is not there, in place
        assert app.screen.STEP == "review" and "nope.png: no such file" in error_text(app)
        field.focus()
        await type_into(pilot, str(tmp_path / "photo.png"))
        await press(pilot, "tab", "space")  # the benchmark checkbox
        await settle(pilot)
        command = str(app.screen.query_one("#command", Static).render())
        assert f"--sample-input {tmp_path / 'photo.png'} --benchmark" in command.replace("\n", "")
        assert app.screen.problem() is None

    drive(app, script)
