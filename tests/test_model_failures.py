"""Failures a model file causes end in one line naming cause and fix (exit 2), not "internal error".

Hostile GraphDefs are built here with the protobuf classes. Those engine.graph_checks finds are
refused by `convert --dryrun` and by `convert` before TensorFlow loads; the crash, out-of-memory
and full-disk cases run the real worker.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import REPO, SAMPLES, assert_clean_error, run_cli
from engine.protos import GraphDef

F = 1  # DT_FLOAT


def placeholder(g, name="x"):
    x = g.node.add(name=name, op="Placeholder")
    x.attr["dtype"].type = F
    for d in (1, 4):
        x.attr["shape"].shape.dim.add(size=d)


def node(g, name, op, *inputs):
    n = g.node.add(name=name, op=op, input=list(inputs))
    n.attr["T"].type = F
    return n


def short_const():
    g = GraphDef()
    placeholder(g)
    c = g.node.add(name="w", op="Const")
    c.attr["dtype"].type = F
    t = c.attr["value"].tensor
    t.dtype = F
    for d in (1, 4):
        t.tensor_shape.dim.add(size=d)
    t.tensor_content = b"\0" * 8  # half of a [1, 4] float32
    node(g, "y", "AddV2", "x", "w")
    return g


def const_without_data(keep_value: bool):
    """A Const whose value is a bare shape (no dtype, no data), or that has no value at all."""
    g = GraphDef()
    placeholder(g)
    c = g.node.add(name="w", op="Const")
    c.attr["dtype"].type = F
    if keep_value:
        for d in (1, 4):
            c.attr["value"].tensor.tensor_shape.dim.add(size=d)
    node(g, "y", "AddV2", "x", "w")
    return g


def self_calling_function():
    g = GraphDef()
    placeholder(g)
    f = g.library.function.add()
    f.signature.name = "rec"
    f.signature.input_arg.add(name="a", type=F)
    f.signature.output_arg.add(name="b", type=F)
    f.node_def.add(name="call", op="rec", input=["a"])
    f.ret["b"] = "call:b:0"
    g.node.add(name="y", op="rec", input=["x"])
    return g


def bad_name():
    g = GraphDef()
    placeholder(g)
    node(g, "bad name!", "Relu", "x")
    node(g, "y", "Identity", "bad name!")
    return g


def cycle():
    g = GraphDef()
    placeholder(g)
    node(g, "a", "AddV2", "x", "b")
    node(g, "b", "Relu", "a")
    node(g, "y", "Identity", "b")
    return g


def self_reference():
    g = GraphDef()
    placeholder(g)
    node(g, "a", "AddV2", "x", "a")
    node(g, "y", "Identity", "a")
    return g


def no_outputs():
    g = GraphDef()
    placeholder(g)
    return g


CASES = {  # today's main: InvalidArgumentError as internal error, SIGSEGV, "does not accept these input shapes" x3,
    "short-const": (short_const, ("Const 'w'", "8 bytes", "short", "re-export")),  # and upstream lines with --outputs ''
    "const-shape-without-data": (lambda: const_without_data(True), ("Const 'w'", "(no data)")),  # internal error
    "const-without-value": (lambda: const_without_data(False), ("Const 'w'", "has no value")),  # "input shapes"
    "self-calling-function": (self_calling_function, ("function rec → rec calls itself", "re-export")),
    "invalid-node-name": (bad_name, ("'bad name!'", "not one TensorFlow accepts")),
    "input-cycle": (cycle, ("cycle (a → b → a)",)),
    "self-reference": (self_reference, ("cycle (a → a)",)),
    "no-outputs": (no_outputs, ("no outputs", "--output NAME")),
}


@pytest.mark.parametrize("case", CASES)
def test_malformed_graphs_are_refused_before_tensorflow(tmp_path, case):
    build, needles = CASES[case]
    model = tmp_path / f"{case}.pb"
    model.write_bytes(build().SerializeToString())
    for args in (("--dryrun",), ()):
        proc = run_cli("convert", model, "--to", "onnx,openvino", "-o", tmp_path / "out", *args, timeout=120)
        line = assert_clean_error(proc, *needles)
        assert "internal error" not in line and "input shapes" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == [model.name]


def test_inspect_says_the_graph_is_malformed(tmp_path):
    model = tmp_path / "cycle.pb"
    model.write_bytes(cycle().SerializeToString())
    proc = run_cli("inspect", model)
    assert proc.returncode == 0 and "malformed: nodes feed themselves in a cycle" in proc.stdout, proc.stderr


def test_tensorflow_crashing_on_the_model_says_it_is_malformed(tmp_path):
    """The crash itself, with the static check off (in the CLI and its worker, via sitecustomize):
    TensorFlow dies with SIGSEGV loading a function that calls itself."""
    model = tmp_path / "rec.pb"
    model.write_bytes(self_calling_function().SerializeToString())
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("from engine import graph_checks\ngraph_checks.malformed = lambda g: None\n")
    proc = run_cli("convert", model, "--to", "onnx", "-o", tmp_path / "out", timeout=300,
                   env={"PYTHONPATH": f"{site}{os.pathsep}{REPO}"})
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]  # after the progress lines
    assert "crashed (SIGSEGV) while loading the model: the model is malformed" in line, proc.stderr
    assert "internal error" not in proc.stderr and "TFWIZARD_DEBUG" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.pb", "site"]


def test_out_of_memory_death_is_one_line_with_one_hint(tmp_path):
    """The OOM killer's SIGKILL, sent here to the worker while it loads the model."""
    proc = subprocess.Popen([sys.executable, "-m", "wizard", "convert", str(SAMPLES / "frozen_graph.pb"), "--to",
                             "onnx", "-o", str(tmp_path / "out"), "--progress", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    for line in proc.stdout:
        if json.loads(line).get("stage") == "load":
            worker = int(open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()[0])
            os.kill(worker, signal.SIGKILL)
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 2, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "killed (SIGKILL) while loading and freezing the model" in stderr and "out of memory" in stderr
    assert stderr.count("TFWIZARD_DEBUG") <= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["-1000000000000", "lots"])
def test_a_negative_or_bad_disk_reserve_is_refused(tmp_path, value):
    proc = run_cli("convert", SAMPLES / "frozen_graph.pb", "--to", "onnx", "-o", tmp_path / "out",
                   env={"TFWIZARD_DISK_RESERVE": value})
    assert_clean_error(proc, "TFWIZARD_DISK_RESERVE", "0 or more")


def test_a_disk_that_fills_during_the_run_is_one_line(tmp_path):
    """A small tmpfs in a private mount namespace (unshare -rm); the disk is filled once converting starts."""
    if not shutil.which("unshare") or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("no user namespaces here to mount a small filesystem in")
    disk = tmp_path / "disk"
    disk.mkdir()
    driver = f"""
import json, subprocess, sys
proc = subprocess.Popen([sys.executable, "-m", "wizard", "convert", {str(SAMPLES / 'frozen_graph.pb')!r}, "--to", "onnx",
                         "-o", {str(disk / 'out')!r}, "--progress", "json", "--no-verify"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
for line in proc.stdout:
    if json.loads(line).get("stage") == "convert":  # another program fills the disk
        try:
            with open({str(disk / 'filler')!r}, "wb") as f:
                while True:
                    f.write(b"0" * 65536)
                    f.flush()
        except OSError:
            pass
err = proc.stderr.read()
print(json.dumps({{"code": proc.wait(), "stderr": err}}))
"""
    mount = f"mount -t tmpfs -o size=80m tmpfs {disk} && exec {sys.executable} -c \"$0\""
    run = subprocess.run(["unshare", "-rm", "sh", "-c", mount, driver], capture_output=True, text=True,
                         cwd=REPO, timeout=300, env={**os.environ, "TFWIZARD_DISK_RESERVE": "0"})
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["code"] == 2, result["stderr"]
    lines = [ln for ln in result["stderr"].strip().splitlines() if ln.startswith("tfwizard: error")]
    assert len(lines) == 1 and "the disk filled up during the conversion" in lines[0], result["stderr"]
    assert "internal error" not in result["stderr"]
