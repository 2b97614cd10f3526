"""User code a conversion runs (issue 15): Keras custom objects (--custom-objects) and TensorFlow custom
op libraries (--load-op-library). Both need --trust-model, run in the sandboxed worker, and show in
inspect, preflight, --dryrun and both wizard faces.

The Keras samples are sample_models/custom_objects/ (built by sample_models/custom.py). The custom op
library is compiled here against the installed TensorFlow's headers, so its graph is built here too.
"""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import MANIFEST, SAMPLES, assert_clean_error, run_cli
from engine.detect import detect
from engine.errors import UserError
from engine.inspect import inspect
from engine.options import ConversionOptions
from engine.plan import plan
from engine.protos import GraphDef

CUSTOM = [m for m in MANIFEST if m.get("custom_objects")]
OP = "TfwizardAddOne"
ALL = "onnx,tfjs,openvino,tflite"


def sample(entry):
    return SAMPLES / entry["path"], SAMPLES / entry["custom_objects"]


def by_path(path):
    return next(m for m in CUSTOM if m["path"] == path)


# --- without TensorFlow: inspect, plan, the command ----------------------------------------------------


def test_the_samples_cover_keras_2_h5_and_keras_3_keras_and_h5():
    assert {(m["format"], m["path"].endswith(".h5")) for m in CUSTOM} == {
        ("keras_h5", True), ("keras_v3", False)} and len(CUSTOM) == 3
    assert all((SAMPLES / m["custom_objects"]).is_file() for m in CUSTOM)


@pytest.mark.parametrize("entry", CUSTOM, ids=[m["path"] for m in CUSTOM])
def test_inspect_lists_the_custom_classes_the_model_needs(entry):
    model, _ = sample(entry)
    assert sorted(inspect(detect(model)).custom_classes) == sorted(entry["custom_classes"])
    doc = json.loads(run_cli("inspect", model, "--json").stdout)
    assert sorted(doc["custom_classes"]) == sorted(entry["custom_classes"]) and doc["custom_ops"] == []
    human = run_cli("inspect", model).stdout
    line = next(ln for ln in human.splitlines() if ln.startswith("custom "))
    assert all(c in line for c in entry["custom_classes"]) and "--custom-objects" in line


def test_other_samples_need_no_custom_code():
    for entry in MANIFEST:
        if entry["format"] != "keras_weights_only" and not entry.get("custom_objects"):
            info = inspect(detect(SAMPLES / entry["path"]))
            assert info.custom_classes == [] and info.custom_ops == [], entry["path"]


def _plan(model, **kw):
    return plan(ConversionOptions(model=str(model), targets=("onnx",), output_dir="unused", **kw))


def test_custom_objects_need_trust_model_and_a_file_that_is_there(tmp_path):
    model, code = sample(by_path("custom_objects/keras2_scale.h5"))
    plain = SAMPLES / "keras2_functional.h5"  # no custom class: only the flag asks for trust
    with pytest.raises(UserError, match=r"--custom-objects .*runs that code.*--trust-model"):
        _plan(plain, custom_objects=(str(code),))
    with pytest.raises(UserError, match="no such file"):
        _plan(model, custom_objects=(str(tmp_path / "nope.py"),), trust_model=True)
    with pytest.raises(UserError, match="no module 'no_such_module_here'"):
        _plan(model, custom_objects=("no_such_module_here.layers:Scale",), trust_model=True)
    with pytest.raises(UserError, match="applies to Keras models"):
        _plan(SAMPLES / "frozen_graph.pb", custom_objects=(str(code),), trust_model=True)
    _plan(model, custom_objects=(str(code),), trust_model=True)
    _plan(model, custom_objects=("json:JSONDecoder",), trust_model=True)  # an import path that exists
    with pytest.raises(UserError, match="registerClass"):  # a TF.js layers model would need the class in JavaScript
        plan(ConversionOptions(model=str(model), targets=("tfjs",), output_dir="unused", tfjs_format="layers",
                               custom_objects=(str(code),), trust_model=True))


def test_convert_refuses_in_one_line_and_dryrun_prints_the_flags(tmp_path):
    model, code = sample(by_path("custom_objects/keras2_scale.h5"))
    out = tmp_path / "out"
    for extra in ([], ["--dryrun"]):
        assert_clean_error(run_cli("convert", model, "--to", "onnx", "-o", out, "--custom-objects", code, *extra),
                           "--trust-model")
        assert_clean_error(run_cli("convert", model, "--to", "onnx", "-o", out, "--custom-objects", "not a path!",
                                   "--trust-model", *extra), "neither a .py file nor a module:attr")
    proc = run_cli("convert", model, "--to", ALL, "-o", out, "--custom-objects", code, "--custom-objects", "json",
                   "--trust-model", "--dryrun")
    assert proc.returncode == 0, proc.stderr
    ours, *upstream = proc.stdout.splitlines()
    assert f"--trust-model --custom-objects {code} --custom-objects json" in ours
    # No upstream CLI takes Keras custom objects: each line says so instead of a command that fails.
    assert len(upstream) == 4 and all(line.startswith("# ") for line in upstream)
    assert not out.exists()


def _graph_with_custom_op() -> GraphDef:
    """x → Relu → logits, and x → TfwizardAddOne → aux (a hand-made GraphDef: no library needed to inspect it)."""
    g = GraphDef()
    x = g.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = 1
    for name, op, source in (("logits", "Relu", "x"), ("plus_one", OP, "x"), ("aux", "Identity", "plus_one")):
        node = g.node.add(name=name, op=op, input=[source])
        node.attr["T"].type = 1
    return g


def test_custom_ops_are_listed_blocked_per_target_and_need_a_library(tmp_path):
    from wizard.steps import preflight

    path = tmp_path / "custom_op.pb"
    path.write_bytes(_graph_with_custom_op().SerializeToString())
    info = inspect(detect(path))
    assert info.custom_ops == [OP]
    blocked = preflight(info)  # what the wizard's Graph step shows, TFLite included
    assert all(OP in blocked[t] and "custom op" in blocked[t][OP] for t in ALL.split(","))
    assert "Select TF ops" in blocked["tflite"][OP] and "--extension" in blocked["openvino"][OP]
    with pytest.raises(UserError, match="--trust-model"):
        _plan(path)
    with pytest.raises(UserError, match=f"does not have \\({OP}\\).*--load-op-library"):
        _plan(path, trust_model=True)
    with pytest.raises(UserError, match="--load-op-library .*--trust-model"):
        _plan(SAMPLES / "frozen_graph.pb", op_libraries=(str(path),))
    with pytest.raises(UserError, match="no such file"):
        _plan(path, op_libraries=(str(tmp_path / "nope.so"),), trust_model=True)
    with pytest.raises(UserError, match="not a shared library"):
        _plan(path, op_libraries=(str(path),), trust_model=True)


def test_import_paths_give_a_dict_a_class_or_a_module_s_own_definitions(tmp_path, monkeypatch):
    from engine.user_code import custom_objects

    (tmp_path / "my_objects.py").write_text(textwrap.dedent("""
        from json import JSONDecoder  # imported, not defined here: not a custom object
        class Scale: pass
        def act(x): return x
        def _private(): pass
        TABLE = {"Other": Scale}
    """))
    monkeypatch.syspath_prepend(str(tmp_path))

    def objects(*specs):
        return custom_objects(ConversionOptions(model="m", targets=("onnx",), output_dir="o", custom_objects=specs),
                              keras2=False)
    assert set(objects("my_objects")) == {"Scale", "act"}
    assert set(objects("my_objects:TABLE")) == {"Other"}
    assert set(objects("my_objects:Scale")) == {"Scale"}
    assert set(objects(str(tmp_path / "my_objects.py"))) == {"Scale", "act"}
    with pytest.raises(UserError, match="has no 'Missing'"):
        objects("my_objects:Missing")


def test_an_error_in_the_user_s_file_is_one_line_with_its_line_number(tmp_path):
    from engine.user_code import custom_objects

    bad = tmp_path / "broken_layers.py"
    bad.write_text("import os\n\nraise RuntimeError('boom')\n")
    options = ConversionOptions(model="m", targets=("onnx",), output_dir="o", custom_objects=(str(bad),))
    with pytest.raises(UserError) as e:
        custom_objects(options, keras2=False)
    assert "broken_layers.py:3" in str(e.value) and "RuntimeError: boom" in str(e.value) and "\n" not in str(e.value)
    bad.write_text("def f(:\n")
    with pytest.raises(UserError, match="at line 1 .*SyntaxError"):
        custom_objects(options.replace(custom_objects=(str(bad),)), keras2=True)


# --- the wizard: the Graph step asks for the code ------------------------------------------------------


def test_graph_step_names_the_classes_and_asks_for_their_file():
    from wizard.steps import Answers, questions

    model, code = sample(by_path("custom_objects/keras3_scale.keras"))
    a = Answers()
    a.apply("model", str(model))
    asked = {q.key: q for q in questions("graph", a)}
    assert "trust_model" in asked and "op_libraries" not in asked
    q = asked["custom_objects"]
    assert "tfwizard_demo>ScaleShift" in q.label and q.completion == "path"
    assert "no such file" in q.validate("/no/such/layers.py")
    assert q.validate(str(code)) is None and q.validate("") is None
    a.apply("trust_model", True)
    a.apply("custom_objects", str(code))
    command = a.options().command()
    assert f"--trust-model --custom-objects {code}" in command


def test_plain_wizard_asks_for_the_file_and_prints_the_command(tmp_path, capsys):
    from test_plain import CLEAR_LINE, ENTER, drive

    model, code = sample(by_path("custom_objects/keras2_scale.h5"))
    out = tmp_path / "converted"
    keys = "".join([
        "y",  # trust this model
        str(code) + ENTER,  # the file defining ScaleShift
        ENTER, ENTER,  # batch, shape of x
        ENTER,  # preprocessing: none
        ENTER, ENTER, ENTER,  # targets: onnx; no quantization, default opset
        CLEAR_LINE + str(out) + ENTER,
        ENTER,  # TensorBoard log directory: none
        ENTER,  # print the command
    ])
    code_ = drive(str(model), keys, dryrun=True)
    captured = capsys.readouterr()
    assert code_ == 0, captured.err
    assert captured.out.strip().endswith(f"--trust-model --custom-objects {code}")


def test_app_graph_step_takes_the_file(tmp_path, monkeypatch):
    from pilot import press
    from test_app import drive, type_into
    from wizard.app import WizardApp

    monkeypatch.chdir(tmp_path)
    model, code = sample(by_path("custom_objects/keras2_scale.h5"))
    app = WizardApp(str(model))

    async def script(pilot):
        await press(pilot, "ctrl+n")
        assert app.screen.STEP == "graph"
        await press(pilot, "space", "tab")  # trust it; then the file field
        await type_into(pilot, str(code))
        await press(pilot, "ctrl+n")
        assert app.screen.STEP == "shapes"
        assert f"--custom-objects {code}" in app.answers.options().command()

    drive(app, script)


# --- conversions: the Keras samples with their code --------------------------------------------------------


def convert(tmp_path, model, *extra, to=ALL, env=None):
    out = tmp_path / "out"
    proc = run_cli("convert", model, "--to", to, "-o", out, "--trust-model", *map(str, extra), timeout=600, env=env)
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else None
    return proc, report


def assert_all_verified(proc, report, targets):
    assert proc.returncode == 0, proc.stderr
    assert [t["target"] for t in report["targets"]] == targets.split(",")
    for t in report["targets"]:
        assert t["status"] == "ok", t
        assert t["verification"].get("passed") or "skipped" in t["verification"], t  # skipped: no Node.js for TF.js


@pytest.mark.timeout(300)
def test_keras2_h5_with_a_standalone_keras_file_converts_to_every_target(tmp_path):
    model, code = sample(by_path("custom_objects/keras2_scale.h5"))
    elsewhere = tmp_path / "code" / code.name  # not beside the model: the sandbox must let the worker read it
    elsewhere.parent.mkdir()
    shutil.copy(code, elsewhere)
    proc, report = convert(tmp_path, model, "--custom-objects", elsewhere)
    assert_all_verified(proc, report, ALL)
    assert f"--custom-objects {elsewhere}" in report["command"]


@pytest.mark.timeout(300)
def test_keras3_keras_with_registered_layer_and_activation_converts_to_every_target(tmp_path):
    model, code = sample(by_path("custom_objects/keras3_scale.keras"))
    proc, report = convert(tmp_path, model, "--custom-objects", code)
    assert_all_verified(proc, report, ALL)


@pytest.mark.timeout(300)
def test_keras3_h5_converts(tmp_path):
    model, code = sample(by_path("custom_objects/keras3_scale.h5"))
    proc, report = convert(tmp_path, model, "--custom-objects", code, to="onnx,tflite")
    assert_all_verified(proc, report, "onnx,tflite")


@pytest.mark.timeout(300)
def test_a_tf_keras_style_file_given_as_an_import_path(tmp_path):
    """`from tensorflow.keras.layers import Layer`, `tf.keras.backend`, reached through PYTHONPATH as module:attr."""
    model, _ = sample(by_path("custom_objects/keras2_scale.h5"))
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "tfk_layers.py").write_text(textwrap.dedent('''
        import tensorflow as tf
        from tensorflow.keras.layers import Layer

        class ScaleShift(Layer):
            def build(self, input_shape):
                self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")
                self.shift = self.add_weight(name="shift", shape=(input_shape[-1],), initializer="zeros")

            def call(self, x):
                return tf.keras.backend.tanh(x * self.scale + self.shift)
    '''))
    proc, report = convert(tmp_path, model, "--custom-objects", "tfk_layers:ScaleShift", to="onnx",
                           env={"PYTHONPATH": str(tmp_path / "lib")})
    assert_all_verified(proc, report, "onnx")


@pytest.mark.timeout(300)
def test_without_the_file_the_error_names_the_classes_and_the_flag(tmp_path):
    model, _ = sample(by_path("custom_objects/keras2_scale.h5"))
    proc, report = convert(tmp_path, model, to="onnx")
    assert proc.returncode == 2 and report is None
    error = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert len(error) == 1 and "ScaleShift" in error[0] and "--custom-objects" in error[0], proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


# --- a custom op library, compiled here ------------------------------------------------------------

ADD_ONE_CC = r"""
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
using namespace tensorflow;
REGISTER_OP("TfwizardAddOne").Input("x: float").Output("y: float")
    .SetShapeFn([](shape_inference::InferenceContext* c) { c->set_output(0, c->input(0)); return OkStatus(); });
class AddOneOp : public OpKernel {
 public:
  explicit AddOneOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &y));
    auto in = x.flat<float>();
    auto out = y->flat<float>();
    for (int64_t i = 0; i < in.size(); ++i) out(i) = in(i) + 1.0f;
  }
};
REGISTER_KERNEL_BUILDER(Name("TfwizardAddOne").Device(DEVICE_CPU), AddOneOp);
"""

BUILD_GRAPH = """
import sys
import numpy as np
import tensorflow as tf
lib = tf.load_op_library(sys.argv[1])
g = tf.Graph()
with g.as_default():
    x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
    w = tf.constant(np.arange(8, dtype=np.float32).reshape(4, 2) / 10)
    tf.nn.relu(tf.matmul(x, w), name="logits")
    plus = lib.tfwizard_add_one(x, name="plus_one")
    tf.identity(tf.reduce_sum(plus, axis=1, keepdims=True) * 2.0, name="aux")
tf.io.write_graph(g.as_graph_def(), sys.argv[2], "custom_op.pb", as_text=False)
"""


@pytest.fixture(scope="module")
def custom_op(tmp_path_factory):
    """(graph, library): a one-op library built with the wheel's headers, in a folder of its own, and a
    graph using it (logits without the op, aux through it)."""
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler (g++) to build a custom op library")
    flags = subprocess.run([sys.executable, "-c", "import tensorflow as tf; print(' '.join(tf.sysconfig.get_compile_flags()));"
                            "print(' '.join(tf.sysconfig.get_link_flags()))"], capture_output=True, text=True, timeout=300)
    compile_flags, link_flags = flags.stdout.strip().splitlines()[-2:]
    include = next((f[2:] for f in compile_flags.split() if f.startswith("-I")), "")
    if not Path(include, "tensorflow", "core", "framework", "op.h").is_file():
        pytest.skip(f"TensorFlow's C++ headers are not in {include or 'the wheel'}")
    root = tmp_path_factory.mktemp("custom_op")
    (root / "lib").mkdir()
    (root / "model").mkdir()
    source, library = root / "lib" / "add_one.cc", root / "lib" / "add_one.so"
    source.write_text(ADD_ONE_CC)
    build = subprocess.run([compiler, "-std=c++17", "-shared", "-fPIC", "-O1", "-w", str(source), "-o", str(library),
                            *compile_flags.split(), *link_flags.split()], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    made = subprocess.run([sys.executable, "-c", BUILD_GRAPH, str(library), str(root / "model")],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    return root / "model" / "custom_op.pb", library


def test_inspect_names_the_custom_op(custom_op):
    graph, _ = custom_op
    doc = json.loads(run_cli("inspect", graph, "--json").stdout)
    assert doc["custom_ops"] == [OP] and doc["custom_classes"] == []
    assert any(f"{OP} node 'plus_one'" in r and "custom op" in r for r in doc["code_risks"])


def test_custom_op_commands(custom_op, tmp_path):
    graph, library = custom_op
    out = tmp_path / "out"
    assert_clean_error(run_cli("convert", graph, "--to", "onnx", "-o", out, "--trust-model", "--dryrun"),
                       OP, "--load-op-library")
    assert_clean_error(run_cli("convert", graph, "--to", "onnx", "-o", out, "--load-op-library", library, "--dryrun"),
                       "--trust-model")
    proc = run_cli("convert", graph, "--to", ALL, "-o", out, "--trust-model", "--load-op-library", library,
                   "--output", "logits", "--dryrun")
    assert proc.returncode == 0, proc.stderr
    ours, onnx, tfjs, openvino, tflite = proc.stdout.splitlines()
    assert f"--trust-model --load-op-library {library}" in ours
    assert f"--load_op_libraries {library}" in onnx  # tf2onnx loads it itself
    assert openvino.startswith("ovc ")  # OpenVINO's frontend reads the graph without TensorFlow: no library needed
    assert tfjs.startswith("# tfjs:") and tflite.startswith("# tflite:")  # neither can load a library


@pytest.mark.timeout(300)
def test_every_target_names_the_custom_op_it_cannot_take(custom_op, tmp_path):
    graph, library = custom_op
    proc, report = convert(tmp_path, graph, "--load-op-library", library, "--no-verify")
    assert proc.returncode == 1, proc.stderr
    for t in report["targets"]:
        assert t["status"] == "unsupported" and OP in t["message"] and "custom op" in t["message"], t
    hints = {t["target"]: t["message"] for t in report["targets"]}
    assert "Select TF ops" in hints["tflite"] and "--extension" in hints["openvino"] and "tf.registerOp" in hints["tfjs"]
    lines = [ln for ln in proc.stdout.splitlines() if "UNSUPPORTED" in ln]
    assert len(lines) == 4  # one line per target


@pytest.mark.timeout(300)
def test_cut_off_from_the_custom_op_every_target_converts_and_verifies(custom_op, tmp_path):
    graph, library = custom_op  # the library lies outside the model's folder: the sandbox must allow it
    proc, report = convert(tmp_path, graph, "--load-op-library", library, "--output", "logits")
    assert_all_verified(proc, report, ALL)


@pytest.mark.timeout(300)
def test_a_library_that_does_not_define_the_op_is_one_line(custom_op, tmp_path):
    graph, _ = custom_op
    other = next((p for p in ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6",
                              "/lib64/libm.so.6", "/usr/lib64/libm.so.6") if Path(p).is_file()), None)
    if other is None:
        pytest.skip("no libm.so.6 here to stand for a library without the op")
    proc, report = convert(tmp_path, graph, "--load-op-library", other, to="onnx")
    assert proc.returncode == 2 and report is None
    error = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert len(error) == 1 and f"no library registers {OP}" in error[0], proc.stderr


@pytest.mark.timeout(300)
def test_the_user_s_code_runs_inside_the_sandbox(tmp_path):
    from engine import sandbox

    if sandbox.abi_version() == 0:
        pytest.skip("no Landlock on this kernel: the worker runs unconfined")
    model, code = sample(by_path("custom_objects/keras2_scale.h5"))
    escaped = tmp_path / "escaped.txt"
    hostile = tmp_path / "code" / "hostile_layers.py"
    hostile.parent.mkdir()
    hostile.write_text(code.read_text() + f"\nopen({str(escaped)!r}, 'w').write('out')\n")
    proc, report = convert(tmp_path, model, "--custom-objects", hostile, to="onnx")
    assert proc.returncode == 2 and report is None, proc.stderr
    error = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert len(error) == 1 and "PermissionError" in error[0] and "hostile_layers.py" in error[0], proc.stderr
    assert not escaped.exists()
