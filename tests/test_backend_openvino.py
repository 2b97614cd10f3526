"""The OpenVINO backend: real conversions run in the OpenVINO runtime against TensorFlow, preflight,
and the ovc command (spelled, and run once against our own IR)."""

from conftest import backend_options, convert_into, make_prepared_from_frozen, run_cli, tf_outputs, scratch_dir
import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.backends import Prepared
from engine.backends.openvino import BACKEND, ConversionFailed, preflight_model
from engine.detect import detect
from engine.inspect import TensorInfo, inspect
from engine.verify import compare

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"


@pytest.fixture(scope="module")
def tf():
    from engine.prepare import import_tensorflow

    return import_tensorflow()




def freeze_signature(tf, saved_model, inputs, outputs, path):
    """Freeze a SavedModel's serving_default into `path`, Placeholders and Identity outputs named ours."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    loaded = tf.saved_model.load(str(saved_model))  # kept alive while tracing: it owns the variables
    fn = loaded.signatures["serving_default"]
    specs = [tf.TensorSpec(None if i.shape is None else [None if d == -1 else d for d in i.shape], i.dtype, name=i.name)
             for i in inputs]
    traced = tf.function(lambda *args: [tf.identity(fn(**{i.name: a for i, a in zip(inputs, args)})[o]) for o in outputs],
                         input_signature=specs)
    frozen = convert_variables_to_constants_v2(traced.get_concrete_function())
    graph_def = frozen.graph.as_graph_def()
    for name, tensor in zip(outputs, frozen.outputs):
        node = graph_def.node.add(name=name, op="Identity", input=[tensor.name.removesuffix(":0")])
        node.attr["T"].type = tensor.dtype.as_datatype_enum
    Path(path).write_bytes(graph_def.SerializeToString())
    return path


options = functools.partial(backend_options, "openvino")


def convert(prepared, tmp_path, **kw):
    return convert_into(BACKEND, prepared, options(**kw), tmp_path)


@pytest.fixture(scope="module")
def frozen(tf):
    return make_prepared_from_frozen(SAMPLES / "frozen_graph.pb", [TensorInfo("input", "float32", [-1, 8])], ["output"])


def test_frozen_graph_converts_and_matches_tensorflow(frozen, tmp_path):
    outdir, lines = convert(frozen, tmp_path)
    assert sorted(p.name for p in outdir.iterdir()) == ["model.bin", "model.xml"]
    assert "fp32 weights" in lines[-1]
    import openvino as ov

    ir = ov.Core().read_model(outdir / "model.xml")
    assert [p.get_names() for p in ir.inputs] == [{"input"}] and [p.get_names() for p in ir.outputs] == [{"output"}]
    assert str(ir.inputs[0].get_partial_shape()) == "[?,8]"
    run = BACKEND.load(outdir, frozen)
    for batch in (1, 5):  # dynamic batch
        feeds = {"input": np.random.default_rng(batch).uniform(-1, 1, (batch, 8)).astype(np.float32)}
        got, want = run(feeds), tf_outputs(frozen, feeds)
        assert got.keys() == {"output"}
        assert np.abs(got["output"] - want["output"]).max() <= BACKEND.tolerance(options()).atol


def test_conversion_and_verification_send_no_telemetry(tmp_path):
    """`import openvino` and convert_model would count the run in ~/intel/ and report it to Google
    Analytics. A process of its own, so no earlier import in this one hides it."""
    home = tmp_path / "home"
    home.mkdir()
    proc = run_cli("convert", SAMPLES / "frozen_graph.pb", "--to", "openvino", "-o", tmp_path / "out",
                   env={"HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    assert "PASS" in proc.stdout + proc.stderr  # verified: the OpenVINO runtime ran it too
    assert not (home / "intel").exists()  # (Keras writes its ~/.keras config on import: not telemetry)


def test_fp16_compresses_weights_within_tolerance(frozen, tmp_path):
    outdir, lines = convert(frozen, tmp_path, quantize={"openvino": "fp16"})
    assert "fp16 weights" in lines[-1] and 'element_type="f16"' in (outdir / "model.xml").read_text()
    feeds = {"input": np.random.default_rng(0).uniform(-1, 1, (3, 8)).astype(np.float32)}
    check = compare(tf_outputs(frozen, feeds), BACKEND.load(outdir, frozen)(feeds),
                    BACKEND.tolerance(options(quantize={"openvino": "fp16"})))
    assert check["passed"] and check["max_abs_diff"] > 0 and check["tolerance"] == 1e-2


def test_int32_and_unknown_rank_inputs(tf, tmp_path):
    inputs = [TensorInfo("tokens", "int32", [-1, 16]), TensorInfo("signal", "float32", None)]
    prepared = make_prepared_from_frozen(freeze_signature(tf, SAMPLES / "dynamic_shapes", inputs, ["energy", "pooled"], tmp_path / "p.pb"),
                                         inputs, ["energy", "pooled"])
    outdir, lines = convert(prepared, tmp_path)
    assert any("unknown rank" in line for line in lines)
    run = BACKEND.load(outdir, prepared)
    rng = np.random.default_rng(1)
    for signal_shape in [(2, 8), (5,)]:  # the runner gives the unknown-rank input each feed's rank
        feeds = {"tokens": rng.integers(0, 10, (2, 16)).astype(np.int32),
                 "signal": rng.uniform(0, 1, signal_shape).astype(np.float32)}
        got, want = run(feeds), tf_outputs(prepared, feeds)
        assert list(got) == ["energy", "pooled"] and got["energy"].shape == ()
        for name in want:
            assert np.abs(got[name] - want[name]).max() <= 1e-4


UNSUPPORTED_GRAPH = """
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_INT32 } } }
node { name: "y" op: "Placeholder" attr { key: "dtype" value { type: DT_INT32 } } }
node { name: "args" op: "BroadcastGradientArgs" input: "x" input: "y" attr { key: "T" value { type: DT_INT32 } } }
node { name: "out" op: "Identity" input: "args" attr { key: "T" value { type: DT_INT32 } } }
"""


def test_unsupported_op_named_by_preflight_and_conversion(tf, tmp_path):
    from google.protobuf import text_format

    graph_def = text_format.Parse(UNSUPPORTED_GRAPH, tf.compat.v1.GraphDef())
    path = tmp_path / "bad.pb"
    path.write_bytes(graph_def.SerializeToString())
    assert list(preflight_model(path)) == ["BroadcastGradientArgs"]
    assert preflight_model(SAMPLES / "frozen_graph.pb") == {}
    prepared = Prepared(graph_def=graph_def, graph_path=path, outputs=["out"],
                        inputs=[TensorInfo("x", "int32", [-1]), TensorInfo("y", "int32", [-1])])
    with pytest.raises(ConversionFailed, match=r"BroadcastGradientArgs \(no conversion rule.*\) at args"):
        convert(prepared, tmp_path)


def test_preflight_from_op_table_without_importing_tensorflow():
    code = ("import sys, engine.backends.openvino as m\n"
            "print(sorted(m.BACKEND.preflight({'MatMul': 2, 'LoopCond': 1, 'OptionalNone': 1, 'MyCustomOp': 1, "
            "'Dense': 1})))\n"
            "print(any(k in sys.modules for k in ('tensorflow', 'openvino')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=scratch_dir()).stdout.split("\n")
    # Only ops TensorFlow has and OpenVINO lacks; unknown names are left to the conversion.
    assert out[:2] == ["['OptionalNone']", "False"]


def test_upstream_command_spelling():
    def cmd(path, **kw):
        opts = options(model=str(SAMPLES / path), output_dir="OUT", **kw)
        info = inspect(detect(opts.model), tag=opts.tag, signature=opts.signature)
        argv = BACKEND.upstream_command(opts, info)
        return argv and [a.replace(str(SAMPLES) + "/", "") for a in argv]

    assert cmd("frozen_graph.pb") == ["ovc", "frozen_graph.pb", "--output_model", "OUT/openvino/model.xml",
                                      "--input", "input:0[?,8]", "--output", "output:0", "--compress_to_fp16=False"]
    assert cmd("frozen_graph.pb", batch=1, quantize={"openvino": "fp16"})[4:] == [
        "--input", "input:0[1,8]", "--output", "output:0", "--compress_to_fp16=True"]
    assert cmd("saved_model_tf2", inputs=(("x", (2, 4)),))[4:7] == ["--input", "x[2,4]", "--output"]
    assert cmd("dynamic_shapes")[4:8] == ["--input", "signal,tokens[?,16]", "--output", "energy,pooled"]
    assert cmd("metagraph/model.meta")[4:8] == ["--input", "x:0[?,8]", "--output", "probs:0"]  # is_training left out
    for path, kw in [("keras2_sequential.h5", {}), ("keras_sequential.keras", {}), ("saved_model_tf2", {"signature": "scale"}),
                     ("frozen_graph.pb", {"preset": "mobilenet"})]:
        assert cmd(path, **kw) is None, path
