"""-o: tfwizard replaces only what it wrote, never what the user put there (engine.output).

Real runs of the CLI (the TensorFlow worker included) on the smallest sample, with the user's
files, a race during the run, a second run, a signal after the final rename and kill -9.
"""

import ctypes
import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import REPO, SAMPLES, assert_clean_error, run_cli
from engine import output

MODEL = SAMPLES / "frozen_graph.pb"
CONVERT = ("convert", MODEL, "--to", "onnx", "--no-verify")


def user_files(out):
    out.mkdir()
    (out / "photo.jpg").write_bytes(b"\xff\xd8precious")
    (out / ".git").mkdir()
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return sorted(p.relative_to(out) for p in out.rglob("*"))


def earlier_output(out, targets=("onnx",)):
    """What an earlier run left: report.json (our schema) and its target directories, plus a user's notes."""
    out.mkdir()
    (out / "report.json").write_text(json.dumps({"schema": output.REPORT_SCHEMA,
                                                  "targets": [{"target": t} for t in targets]}))
    for t in targets:
        (out / t).mkdir()
        (out / t / "old.bin").write_text("old")
    (out / "notes.txt").write_text("mine")


def test_force_does_not_delete_a_directory_tfwizard_did_not_write(tmp_path):
    out = tmp_path / "out"
    before = user_files(out)
    for args in (("--dryrun", "--force"), ("--force",)):
        line = assert_clean_error(run_cli(*CONVERT, "-o", out, *args), "did not write", "--force does not replace")
        assert str(out) in line
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


@pytest.mark.parametrize("where", ["model-dir", "model-parent", "inside-model", "model-file"])
def test_output_may_not_be_contain_or_lie_inside_the_model(tmp_path, where):
    import shutil

    model_dir = tmp_path / "m"
    shutil.copytree(SAMPLES / "saved_model_tf2", model_dir)
    model, out = {"model-dir": (model_dir, model_dir), "model-parent": (model_dir, tmp_path),
                  "inside-model": (model_dir, model_dir / "out"), "model-file": (MODEL, MODEL)}[where]
    before = sorted(model_dir.rglob("*"))
    line = assert_clean_error(run_cli("convert", model, "--to", "onnx", "-o", out, "--force", "--dryrun"), "model")
    assert "outside" in line
    assert sorted(model_dir.rglob("*")) == before


def test_earlier_output_needs_force_and_only_its_own_files_are_replaced(tmp_path):
    out = tmp_path / "out"
    earlier_output(out, targets=("onnx", "tfjs"))
    assert_clean_error(run_cli(*CONVERT, "-o", out, "--dryrun"), "earlier tfwizard output", "--force",
                       "report.json and onnx/, tfjs/", "other files there are kept")
    proc = run_cli(*CONVERT, "-o", out, "--force", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / "onnx" / "old.bin").exists() and (out / "onnx" / "model.onnx").is_file()
    assert not (out / "tfjs").exists()  # the earlier run's, and this run did not make it
    assert json.loads((out / "report.json").read_text())["targets"][0]["status"] == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporaries, no lock left


def test_report_naming_other_directories_does_not_make_them_ours(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text(json.dumps({"schema": output.REPORT_SCHEMA,
                                                  "targets": [{"target": "photos"}, {"target": "../x"}]}))
    assert output.earlier_output(out).owned == ("report.json",)


def test_files_put_in_the_output_during_the_run_are_kept_and_the_new_output_goes_beside(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "wizard", *map(str, CONVERT), "-o", str(out), "--progress", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    events = []
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1].get("stage") == "convert":  # the user saves a file into -o meanwhile
            out.mkdir()
            (out / "photo.jpg").write_text("precious")
    stderr = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["photo.jpg"]
    beside = tmp_path / "out.new"
    assert (beside / "onnx" / "model.onnx").is_file() and (beside / "report.json").is_file()
    assert events[-1]["event"] == "done" and events[-1]["output_dir"] == str(beside)
    assert any(str(beside) in e.get("message", "") for e in events if e["event"] == "log")


def test_a_second_run_on_the_same_output_is_refused(tmp_path):
    out = tmp_path / "out"
    with output.locked(out):
        assert_clean_error(run_cli(*CONVERT, "-o", out), "another tfwizard run is writing there")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_signal_after_the_output_is_in_place_says_it_is_complete(tmp_path):
    """In-process: the signal arrives while 'done' is reported, after the final rename."""
    from engine.convert import convert
    from engine.signals import Interrupted, interruptible
    from engine.options import ConversionOptions

    out = tmp_path / "out"
    options = ConversionOptions(model=str(MODEL), targets=("onnx",), output_dir=str(out), verify=False)

    def emit(event, **fields):
        if event == "done":
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Interrupted) as caught, interruptible():
        convert(options, emit)
    assert caught.value.written == str(out)
    assert (out / "onnx" / "model.onnx").is_file() and (out / "report.json").is_file()


def test_the_worker_dies_with_its_parent_and_a_later_run_removes_the_leftover(tmp_path):
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0  # the orphaned worker becomes our child
    try:
        out = tmp_path / "out"
        proc = subprocess.Popen([sys.executable, "-m", "wizard", *map(str, CONVERT), "-o", str(out),
                                 "--progress", "json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, cwd=REPO)
        for line in proc.stdout:
            if json.loads(line).get("stage") == "import":  # the worker is running
                break
        children = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
        assert len(children) == 1
        worker = int(children[0])
        proc.kill()
        proc.wait(timeout=60)
        _, status = os.waitpid(worker, 0)  # today's main: the worker converts on, then exits on its own
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp-")]
    assert len(stale) == 1 and (stale[0] / output.OWNER_MARKER).is_file()
    theirs_not = tmp_path / ".out.tmp-users-own"  # same pattern, no marker: not provably ours
    theirs_not.mkdir()
    proc = run_cli(*CONVERT, "-o", out, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.tmp-users-own", "out"]


def test_the_wizards_review_asks_consent_only_for_an_earlier_output(tmp_path):
    from wizard.steps import Answers, questions

    a = Answers()
    a.apply("model", str(MODEL))
    mine, earlier = tmp_path / "mine", tmp_path / "earlier"
    user_files(mine)
    earlier_output(earlier)
    a.output_dir = str(mine)
    where, *rest = questions("review", a)
    assert [q.key for q in rest] == ["tensorboard_logdir"]  # no "replace it?" for files tfwizard did not write
    # (the directory is refused)
    assert "did not write" in where.validate(str(mine)) and "outside" in where.validate(str(SAMPLES))
    a.output_dir = str(earlier)
    asked = {q.key: q for q in questions("review", a)}
    where, force = asked["output_dir"], asked["force"]
    assert where.validate(str(earlier)) is None
    assert "earlier tfwizard output" in force.label and "onnx/" in force.help and "kept" in force.help
