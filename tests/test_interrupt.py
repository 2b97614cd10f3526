"""SIGINT and SIGTERM during every phase of convert leave no output and no temporary files.

Two ways, both with real signals and the real handler:
- `tfwizard convert --progress json` child processes, signalled from another thread as soon as
  they report the phase, so the signal lands while the worker is busy in TensorFlow, tf2onnx,
  onnxruntime... The CLI kills its worker process and removes the temporary output. They run
  concurrently; each imports TensorFlow, so a handful of phases is covered this way.
- in-process convert() (library use), for every phase of every target, SIGINT and SIGTERM in
  turn: the progress callback signals this process when the phase starts.
Nothing sleeps: the progress events say where the conversion is.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading

import pytest

from conftest import REPO, SAMPLES, scratch_dir
from engine.backends import TARGETS
from engine.convert import convert
from engine.signals import Interrupted, interruptible
from engine.options import ConversionOptions

MODEL = SAMPLES / "frozen_graph.pb"
# keras takes Keras inputs only (not MODEL): its phases are no different from the others'.
PHASES = [("import", None), ("load", None)] + [(stage, t) for t in TARGETS if t != "keras" for stage in ("convert", "verify")]
SIGNALS = [signal.SIGINT, signal.SIGTERM]
# TensorFlow's autograph writes its generated code to the temp dir and deletes it when the process
# exits: a leftover only for the in-process runs (the child processes show that it goes).
AT_EXIT = "__autograph_generated_file"


def leftovers(parent, tmpdir) -> list[str]:
    """Anything the conversion left: OUT, its .OUT.tmp-*/.write-test/.old-* siblings, temp files."""
    return sorted(p.name for p in parent.iterdir() if p != tmpdir) + sorted(p.name for p in tmpdir.iterdir())


def is_phase(event: dict, stage: str, target: str | None) -> bool:
    return event.get("event") == "stage" and event.get("stage") == stage and event.get("target") == target


def test_children_signalled_mid_phase_leave_nothing(tmp_path):
    # "import": while the worker imports TensorFlow, the longest and most native phase.
    runs = [(signal.SIGTERM, "import", None), (signal.SIGINT, "load", None), (signal.SIGINT, "convert", "onnx"),
            (signal.SIGTERM, "verify", "onnx"), (signal.SIGINT, "verify", "tflite")]
    children = []
    for i, (signum, stage, target) in enumerate(runs):
        parent, tmpdir = tmp_path / f"run{i}", tmp_path / f"run{i}" / "tmp"
        tmpdir.mkdir(parents=True)
        # tflite last but one, so that after an onnx/tflite phase there is always work left to interrupt
        proc = subprocess.Popen(
            [sys.executable, "-m", "wizard", "convert", str(MODEL), "--to", "onnx,tflite,openvino", "-o",
             str(parent / "out"), "--progress", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=scratch_dir(),
            env={**os.environ, "TMPDIR": str(tmpdir)},
        )
        children.append({"proc": proc, "signum": signum, "stage": stage, "target": target, "parent": parent,
                         "tmpdir": tmpdir, "events": []})

    def watch(child):
        for line in child["proc"].stdout:
            event = json.loads(line)
            child["events"].append(event)
            if is_phase(event, child["stage"], child["target"]):
                child["proc"].send_signal(child["signum"])

    threads = [threading.Thread(target=watch, args=(c,)) for c in children]
    for t in threads:
        t.start()
    for c in children:
        c["stderr"] = c["proc"].stderr.read()
        c["proc"].wait(timeout=300)
    for t in threads:
        t.join()
    for c in children:
        name = f"{c['signum'].name} during {c['stage']} {c['target'] or ''}"
        assert any(is_phase(e, c["stage"], c["target"]) for e in c["events"]), name
        assert c["proc"].returncode == 128 + c["signum"], (name, c["proc"].returncode, c["stderr"])
        assert c["stderr"].splitlines() == [f"tfwizard: interrupted ({c['signum'].name}); nothing was written"], name
        assert "done" not in [e["event"] for e in c["events"]], name
        assert leftovers(c["parent"], c["tmpdir"]) == [], (name, leftovers(c["parent"], c["tmpdir"]))


@pytest.mark.parametrize("stage, target, signum", [(s, t, SIGNALS[i % 2]) for i, (s, t) in enumerate(PHASES)],
                         ids=[f"{s}-{t or ''}-{SIGNALS[i % 2].name}" for i, (s, t) in enumerate(PHASES)])
def test_signal_at_each_phase_leaves_nothing(stage, target, signum, tmp_path, monkeypatch):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))  # the backends' own temporary files land here
    options = ConversionOptions(model=str(MODEL), targets=(target or "onnx",), output_dir=str(tmp_path / "out"))
    seen = []

    def emit(event, **fields):
        seen.append((event, fields.get("stage"), fields.get("target")))
        if is_phase({"event": event, **fields}, stage, target):
            os.kill(os.getpid(), signum)

    with pytest.raises(Interrupted) as raised, interruptible():
        convert(options, emit)
    assert raised.value.signum == signum
    assert ("stage", stage, target) in seen
    assert [f for f in leftovers(tmp_path, tmpdir) if not f.startswith(AT_EXIT)] == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_a_swallowed_interrupt_still_stops_the_conversion(tmp_path):
    """A library that catches KeyboardInterrupt (bare except) must not make us write the output:
    the signal is remembered and raised again at the next progress event."""
    options = ConversionOptions(model=str(MODEL), targets=("onnx",), output_dir=str(tmp_path / "out"))

    def emit(event, **fields):
        if event == "stage" and fields.get("stage") == "convert":
            try:
                os.kill(os.getpid(), signal.SIGINT)
            except KeyboardInterrupt:  # what a careless library would do
                pass

    with pytest.raises(Interrupted), interruptible():
        convert(options, emit)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_a_dangling_alternate_signal_stack_does_not_turn_an_interrupt_into_a_crash():
    """OpenVINO's CPU plugin can leave the main thread an alternate signal stack it has unmapped
    (after test_backend_openvino, the next signal here segfaulted the whole pytest run). Recreate
    that in a child: set a stack, unmap it, then interrupt."""
    code = """
import ctypes, mmap, os, signal
from engine.signals import Interrupted, interruptible

class StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
size = 64 * 1024
sp = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
assert libc.sigaltstack(ctypes.byref(StackT(sp, 0, size)), None) == 0
assert libc.munmap(ctypes.c_void_p(sp), ctypes.c_size_t(size)) == 0
try:
    with interruptible():
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass
except Interrupted:
    print("interrupted")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=scratch_dir(), timeout=60)
    assert (proc.returncode, proc.stdout.strip()) == (0, "interrupted"), (proc.returncode, proc.stderr[-500:])
