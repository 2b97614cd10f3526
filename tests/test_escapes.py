"""Node names carrying terminal escapes reach no terminal raw, in any face (engine.text).

The hostile GraphDef is built here with the protobuf classes: an input named with Textual markup and a
window-title OSC (ESC]0;...BEL), a node with a clear-screen CSI (ESC[2J), and an output
with an OSC 52 clipboard write.
"""

import asyncio
import io
import subprocess

import pytest

from conftest import run_cli
from engine.protos import GraphDef
from engine.text import printable, shell_quote

TITLE, CLEAR, CLIP = "\x1b]0;pwned\x07", "\x1b[2J", "\x1b]52;c;SGVsbG8=\x07"
INPUT, MIDDLE, OUTPUT = "[b]in[/b]" + TITLE, "mid" + CLEAR, "out" + CLIP
RAW = ("\x1b", "\x07", "\x9b")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    from tensorboard.compat.proto import types_pb2

    g = GraphDef()
    x = g.node.add(name=INPUT, op="Placeholder")
    x.attr["dtype"].type = types_pb2.DT_FLOAT
    for d in (1, 4):
        x.attr["shape"].shape.dim.add(size=d)
    for name, op, source in ((MIDDLE, "Relu", INPUT), (OUTPUT, "Identity", MIDDLE)):
        node = g.node.add(name=name, op=op, input=[source])
        node.attr["T"].type = types_pb2.DT_FLOAT
    path = tmp_path_factory.mktemp("hostile") / "names.pb"
    path.write_bytes(g.SerializeToString())
    return path


def assert_inert(*texts):
    for text in texts:
        for byte in RAW:
            at = text.find(byte)
            assert at < 0, repr(text[max(0, at - 80):at + 40])


def test_inspect_escapes_names(hostile):
    proc = run_cli("inspect", hostile)
    assert proc.returncode == 0, proc.stderr
    assert_inert(proc.stdout, proc.stderr)
    assert "[b]in[/b]\\x1b]0;pwned\\x07" in proc.stdout and "out\\x1b]52;c;SGVsbG8=\\x07" in proc.stdout


def test_dryrun_commands_are_inert_and_still_the_same_arguments(tmp_path):
    """Node names TensorFlow accepts carry no control characters (engine.graph_checks refuses the
    others), but file names and SavedModel signature keys can: the printed commands use $'...'."""
    import shutil

    from conftest import SAMPLES

    model, out = tmp_path / ("m" + TITLE + ".pb"), tmp_path / ("o" + CLEAR)
    shutil.copy(SAMPLES / "frozen_graph.pb", model)
    proc = run_cli("convert", model, "--to", "onnx,openvino", "-o", out, "--dryrun")
    assert proc.returncode == 0, proc.stderr
    assert_inert(proc.stdout, proc.stderr)
    command, *upstream = proc.stdout.splitlines()
    # bash reads the printed line back as the very arguments, ESC and BEL included.
    argv = subprocess.run(["bash", "-c", "printf '%s\\0' " + command.removeprefix("tfwizard ")],
                          capture_output=True, text=True, check=True).stdout.split("\0")[:-1]
    assert argv == ["convert", str(model), "--to", "onnx,openvino", "-o", str(out)]
    assert all(shell_quote(str(model)) in line for line in upstream)


def test_convert_refuses_names_tensorflow_rejects_and_says_so_inertly(hostile, tmp_path):
    for args in ((), ("--dryrun",)):
        proc = run_cli("convert", hostile, "--to", "onnx", "-o", tmp_path / "o", *args)
        assert proc.returncode == 2, proc.stderr
        assert_inert(proc.stdout, proc.stderr)
        assert "not one TensorFlow accepts" in proc.stderr and printable(INPUT) in proc.stderr


def test_plain_wizard_escapes_names(hostile, tmp_path):
    proc = run_cli("--plain", "--yes", "--dryrun", hostile, cwd=tmp_path)
    assert proc.returncode == 2 and "not one TensorFlow accepts" in proc.stderr, proc.stderr  # at the review
    assert_inert(proc.stdout, proc.stderr)
    assert printable(INPUT) in proc.stderr and printable(OUTPUT) in proc.stderr


def test_plain_prompts_escape_names(hostile, tmp_path, monkeypatch):
    """The questionary prompts themselves, through prompt_toolkit's plain output."""
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output.plain_text import PlainTextOutput

    from wizard.plain import run_plain

    monkeypatch.chdir(tmp_path)
    screen = io.StringIO()
    with create_pipe_input() as inp, create_app_session(input=inp, output=PlainTextOutput(screen)):
        inp.send_text("\r" * 12)
        inp.close()
        run_plain(str(hostile), dryrun=True)
    assert_inert(screen.getvalue())
    assert printable(INPUT) in screen.getvalue()  # the shape question names the input


def test_textual_wizard_shows_names_escaped_and_not_as_markup(hostile, tmp_path, monkeypatch):
    from wizard.app import WizardApp
    from pilot import press, settle

    monkeypatch.chdir(tmp_path)
    app = WizardApp(str(hostile), dryrun=True)
    screens = {}

    async def main():
        async with app.run_test(size=(120, 60)) as pilot:
            await settle(pilot)
            for _ in range(5):
                screens[app.screen.STEP] = app.export_screenshot()
                await press(pilot, "ctrl+n")
            screens[app.screen.STEP] = app.export_screenshot()

    asyncio.run(main())
    assert {"graph", "shapes", "review"} <= set(screens)
    for step, svg in screens.items():
        assert_inert(svg)
    text = "".join(screens.values()).replace("&#160;", " ")
    assert "[b]in[/b]\\x1b]0;pwned\\x07" in text  # shown as written, not parsed as bold
