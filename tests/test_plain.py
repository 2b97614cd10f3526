"""The plain prompt flow, driven end to end through prompt_toolkit's pipe input (no real TTY).

Keys go in as a terminal would send them; the flow runs in this process, and a real
conversion runs in the child process the flow starts, exactly as for a user.
"""

import fcntl
import io
import json
import os
import select
import subprocess
import sys
import termios
import threading
import time

import numpy as np
import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from prompt_toolkit.output.plain_text import PlainTextOutput

from conftest import SAMPLES
from wizard.plain import CANCELLED, run_plain
from wizard.steps import STEPS, Answers

SLIM = str(SAMPLES / "slim_checkpoint" / "inception_v1_inference_graph.pb")
DOWN, ENTER, SPACE, CLEAR_LINE, BACKSPACE, CTRL_C = "\x1b[B", "\r", " ", "\x15", "\x7f", "\x03"


def drive(model, keys, *, dryrun, screen=None, script=()):
    """run_plain with `keys` typed up front, then `script` ((text to wait for, keys), ...) typed as the
    prompts appear on `screen`; the input then ends, so a missing key fails instead of hanging."""
    with create_pipe_input() as inp:
        output = PlainTextOutput(screen) if screen is not None else DummyOutput()
        with create_app_session(input=inp, output=output):
            inp.send_text(keys)
            feeder = threading.Thread(target=_type_when_shown, args=(inp, screen, script), daemon=True)
            feeder.start()
            code = run_plain(model, dryrun=dryrun)
            feeder.join(5)
            return code


def _type_when_shown(inp, screen, script):
    seen = 0
    for needle, keys in script:
        deadline = time.monotonic() + 30
        while needle not in screen.getvalue()[seen:]:
            if time.monotonic() > deadline:
                inp.close()
                return
            time.sleep(0.02)
        seen = screen.getvalue().index(needle, seen) + len(needle)
        inp.send_text(keys)
    inp.close()


def test_dry_run_prints_exactly_the_command_of_the_same_answers(tmp_path, capsys):
    out = tmp_path / "converted"
    keys = "".join([
        "1" + ENTER,  # batch
        ENTER,  # shape of input: keep
        DOWN + ENTER,  # preprocessing: inception
        ENTER,  # reverse channels: no
        DOWN * 3 + SPACE + ENTER,  # targets: onnx (already ticked) + tflite
        ENTER, ENTER,  # onnx quantization none, opset default
        DOWN * 2 + ENTER,  # tflite quantization: float16
        CLEAR_LINE + str(out) + ENTER,  # output directory
        ENTER,  # TensorBoard log directory: none
        ENTER,  # print the command
    ])
    code = drive(SLIM, keys, dryrun=True)
    captured = capsys.readouterr()
    assert code == 0, captured.err

    same = Answers()
    same.apply("model", SLIM)
    same.batch, same.preprocessing, same.targets = "1", "inception", ["onnx", "tflite"]
    same.quantize, same.output_dir = {"tflite": "float16"}, str(out)
    expected = same.options().command()
    assert captured.out == expected + "\n"  # the command and nothing else on stdout
    assert "--batch 1 --preset inception --quantize tflite:float16" in expected
    assert not out.exists() and not list(tmp_path.iterdir())  # a dry run writes nothing
    for step in STEPS[:6]:
        assert step.title in captured.err
    assert "Conv2d_1a_3x3" in captured.err  # the graph outline
    assert "pixels [0, 255] become [-1, 1]" in captured.err  # the preprocessing preview


def test_real_run_converts_verifies_and_shows_how_to_load(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    keys = ENTER * 10  # every default: onnx, no preprocessing, output frozen_graph_converted, run
    code = drive(str(SAMPLES / "frozen_graph.pb"), keys, dryrun=False)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out == ""  # a real run keeps stdout clean too
    report = json.loads((tmp_path / "frozen_graph_converted" / "report.json").read_text())
    onnx = report["targets"][0]
    assert onnx["status"] == "ok" and onnx["verification"]["passed"]
    assert "max abs diff" in captured.err and "PASS" in captured.err
    assert "frozen_graph_converted/onnx/model.onnx" in captured.err
    assert not list(tmp_path.glob(".frozen_graph_converted.tmp-*"))

    # The lines shown under the target really load the model and run it on its real input.
    lines = captured.err.split("load it:\n", 1)[1].splitlines()
    snippet = [line[6:] for line in lines[:next(k for k, line in enumerate(lines) if not line.startswith(" " * 6))]]
    scope = {}
    exec("\n".join(snippet), scope)
    assert scope["outputs"][0].shape == (1, 4)
    result = scope["session"].run(None, {"input": np.ones((2, 8), np.float32)})
    assert result[0].shape == (2, 4)


def test_invalid_answers_are_asked_again_with_the_validators_message(tmp_path, capsys):
    screen = io.StringIO()
    script = [
        ("Model path", "sample_models/nope.pb" + ENTER),
        ("Model path", CLEAR_LINE + SLIM + ENTER),
        ("Batch size", "x" + ENTER),
        ("must be a positive integer, or blank", BACKSPACE + "2" + ENTER),
        ("Shape of input", CLEAR_LINE + "1,-2" + ENTER),
        ("dimension '-2' is not a positive integer", CLEAR_LINE + "1,32,32" + ENTER),
        ("the input has 4 dimensions, not 3", CLEAR_LINE + "?,32,32,3" + ENTER),
        ("Preprocessing", ENTER * 4 + CLEAR_LINE + str(tmp_path / "o") + ENTER * 3),  # then no TensorBoard dir, print
    ]
    code = drive(None, "", dryrun=True, screen=screen, script=script)
    captured = capsys.readouterr()
    assert code == 0, captured.err + screen.getvalue()[-2000:]
    assert "nope.pb: no such file or directory; check the path" in captured.err  # load error, then asked again
    assert "--batch 2" in captured.out
    assert "--input" not in captured.out  # '?,32,32,3' is the model's own shape: nothing to override


def test_ctrl_c_at_a_prompt_exits_130_with_one_line_and_no_files(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = drive(SLIM, "1" + ENTER + ENTER + DOWN + CTRL_C, dryrun=False)
    captured = capsys.readouterr()
    assert code == 130
    lines = captured.err.strip().splitlines()
    assert lines[-1] == CANCELLED and captured.err.count("cancelled") == 1
    assert "Traceback" not in captured.err and captured.out == ""
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_the_run_cancels_the_child_and_leaves_nothing(tmp_path):
    # A real terminal this time: Ctrl-C is the tty's SIGINT to the wizard, whose conversion child
    # runs in a session of its own. (A fresh process, too: in the test process, after the OpenVINO
    # backend tests, any SIGINT crashes it with SIGSEGV at delivery, in native code not ours.)
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "wizard", "--plain", str(SAMPLES / "image_classifier")],
                            cwd=tmp_path, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0), env={**os.environ, "TERM": "xterm"})
    os.close(slave)
    screen, deadline = b"", time.monotonic() + 120
    try:
        while b"importing TensorFlow" not in screen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.3)[0]:
                screen += os.read(master, 65536)
            else:
                os.write(master, ENTER.encode())  # quiet: a prompt waits; take its default
        assert b"importing TensorFlow" in screen, screen[-2000:]
        while not list(tmp_path.glob(".*.tmp-*")) and time.monotonic() < deadline:
            time.sleep(0.05)  # the child has started writing its temporary output
        os.write(master, CTRL_C.encode())
        assert proc.wait(60) == 130
        while select.select([master], [], [], 0.2)[0]:
            try:
                screen += os.read(master, 65536)
            except OSError:
                break
    finally:
        proc.kill()
        os.close(master)
    text = screen.decode(errors="replace")
    assert text.rstrip().splitlines()[-1].endswith(CANCELLED) and "Traceback" not in text
    assert list(tmp_path.iterdir()) == []  # neither the output nor the temporary sibling


@pytest.mark.parametrize("model", ["saved_model_tf1", "keras2_functional.h5", "metagraph/model.meta"])
def test_every_default_gives_the_default_command(model, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = drive(str(SAMPLES / model), ENTER * 12, dryrun=True)
    captured = capsys.readouterr()
    same = Answers()
    same.apply("model", str(SAMPLES / model))
    assert code == 0, captured.err
    assert captured.out == same.options().command() + "\n"


@pytest.mark.timeout(600)
def test_review_offers_a_check_with_my_own_input_file_and_a_benchmark(tmp_path, capsys, monkeypatch):
    from images import photo_like, write_png

    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "photo.png", photo_like(40, 40))
    keys = "".join([
        ENTER, ENTER,  # batch, shape
        DOWN + ENTER, ENTER,  # preprocessing: inception; reverse channels: no
        ENTER, ENTER, ENTER,  # targets: onnx; no quantization; default opset
        ENTER,  # output directory
        ENTER,  # TensorBoard log directory: none
        DOWN * 2 + ENTER,  # Run or print? → check with my own input file, or time each target
        str(tmp_path / "photo.png") + ENTER,
        "y",  # time each target: yes
        ENTER,  # Run or print? → run
    ])
    code = drive(str(SAMPLES / "image_classifier.keras"), keys, dryrun=False)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"--preset inception --sample-input {tmp_path / 'photo.png'} --benchmark" in captured.err  # the command shown
    report = json.loads((tmp_path / "image_classifier_converted" / "report.json").read_text())
    onnx = report["targets"][0]
    assert onnx["verification"]["passed"] and onnx["verification"]["sample_inputs"] == [str(tmp_path / "photo.png")]
    assert [r["target"] for r in report["benchmark"]["rows"]] == ["tensorflow", "onnx"]
    assert "top-1 100% / top-5 100% of 1 samples: PASS" in captured.err
    assert "speed (batch 1):" in captured.err and "onnxruntime (CPU)" in captured.err
