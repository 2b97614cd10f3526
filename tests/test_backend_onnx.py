"""The ONNX backend: real tf2onnx conversions run in onnxruntime against TensorFlow (fp32, float16
weights, int8, NCHW inputs, Rank and unknown rank, an unsupported op), preflight and its op file,
and the tf2onnx command (spelled, and run against the same model as ours)."""

from conftest import backend_options, convert_into, make_prepared_from_frozen, tf_outputs, scratch_dir
import functools
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.backends.onnx import BACKEND, OPS_FILE, ConversionFailed, _check_converted, write_ops_file
from engine.detect import detect
from engine.errors import UserError
from engine.inspect import TensorInfo, inspect
from engine.verify import compare

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_models"


@pytest.fixture(scope="module")
def tf():
    from engine.prepare import import_tensorflow

    return import_tensorflow()




def freeze(tf, fn, specs, outputs, path):
    """Freeze tf.function `fn` (returning a list) into `path`; Identity nodes named `outputs`."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(tf.function(fn, input_signature=specs).get_concrete_function())
    graph_def = frozen.graph.as_graph_def()
    for name, tensor in zip(outputs, frozen.outputs):
        node = graph_def.node.add(name=name, op="Identity", input=[tensor.name.removesuffix(":0")])
        node.attr["T"].type = tensor.dtype.as_datatype_enum
    Path(path).write_bytes(graph_def.SerializeToString())
    return path


@pytest.fixture(scope="module")
def convnet(tf, tmp_path_factory):
    """image [-1,16,16,3] → Conv2D → Relu → mean → MatMul → Softmax → probs."""
    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.normal(0, 0.3, (3, 3, 3, 8)).astype("float32"))
    weights = tf.constant(rng.normal(0, 0.3, (8, 10)).astype("float32"))

    def fn(x):
        y = tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME")), axis=[1, 2])
        return [tf.nn.softmax(tf.matmul(y, weights))]

    path = freeze(tf, fn, [tf.TensorSpec([None, 16, 16, 3], tf.float32, name="image")], ["probs"],
                  tmp_path_factory.mktemp("convnet") / "convnet.pb")
    return make_prepared_from_frozen(path, [TensorInfo("image", "float32", [-1, 16, 16, 3])], ["probs"])


options = functools.partial(backend_options, "onnx")


def convert(prepared, tmp_path, **kw):
    return convert_into(BACKEND, prepared, options(**kw), tmp_path)


def feeds_for(prepared, shapes=None):
    rng = np.random.default_rng(7)
    return {i.name: rng.uniform(0, 1, (shapes or {}).get(i.name) or [2 if d == -1 else d for d in i.shape]).astype("float32")
            for i in prepared.inputs}


def within_tolerance(prepared, outdir, feeds, mode):
    """The check verification makes: relative to each output's magnitude, for quantized models."""
    opts = options(quantize={"onnx": mode})
    got, want = BACKEND.load(outdir, prepared)(feeds), tf_outputs(prepared, feeds)
    return compare(want, got, BACKEND.tolerance(opts))["passed"]


def max_diff(prepared, outdir, feeds):
    ours, ref = BACKEND.load(outdir, prepared)(feeds), tf_outputs(prepared, feeds)
    assert set(ours) == set(prepared.outputs)
    return max(float(np.max(np.abs(ours[k] - ref[k]))) for k in ref)


def test_frozen_graph_plain_names_and_matches_tensorflow(tf, tmp_path):
    import onnx

    prepared = make_prepared_from_frozen(SAMPLES / "frozen_graph.pb", [TensorInfo("input", "float32", [-1, 8])], ["output"])
    outdir, lines = convert(prepared, tmp_path)
    assert sorted(p.name for p in outdir.iterdir()) == ["model.onnx"]
    model = onnx.load(str(outdir / "model.onnx"))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == ["output"]
    assert model.opset_import[0].version == 15 and "opset 15 (tf2onnx's default)" in lines[0]
    assert max_diff(prepared, outdir, feeds_for(prepared)) <= BACKEND.tolerance(options()).atol


def test_convnet_float16_int8_and_nchw(convnet, tmp_path):
    import onnx

    feeds = feeds_for(convnet)
    fp32, _ = convert(convnet, tmp_path / "fp32")
    assert max_diff(convnet, fp32, feeds) <= 1e-5

    fp16, lines = convert(convnet, tmp_path / "fp16", quantize={"onnx": "float16"})
    model = onnx.load(str(fp16 / "model.onnx"))
    assert {i.data_type for i in model.graph.initializer if len(i.dims) == 4} == {onnx.TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # interface stays float32
    assert re.search(r"wrote model.onnx, [\d.]+ kB \([\d.]+ kB before float16\)", lines[-1]), lines[-1]
    assert 0 < max_diff(convnet, fp16, feeds) and within_tolerance(convnet, fp16, feeds, "float16")

    int8, lines = convert(convnet, tmp_path / "int8", quantize={"onnx": "int8"})
    assert {"ConvInteger", "MatMulInteger"} <= {n.op_type for n in onnx.load(str(int8 / "model.onnx")).graph.node}
    assert sorted(p.name for p in int8.iterdir()) == ["model.onnx"]  # the float32 intermediate is gone
    assert within_tolerance(convnet, int8, feeds, "int8")

    nchw, _ = convert(convnet, tmp_path / "nchw", inputs_as_nchw=("image:0",))
    model = onnx.load(str(nchw / "model.onnx"))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:] == [3, 16, 16]
    assert {p.key: p.value for p in model.metadata_props}["tfwizard.inputs_as_nchw"] == "image"
    assert max_diff(convnet, nchw, feeds) <= 1e-5  # load() transposes the NHWC feeds


def test_rank_and_unknown_rank_input(tf, tmp_path):
    """tf2onnx has no Rank handler (ours turns it into Size(Shape)), and declares unknown-rank inputs as
    scalars, with which onnxruntime silently computes the wrong thing."""
    path = freeze(tf, lambda x: [tf.reduce_sum(tf.square(x), tf.range(tf.rank(x)))],
                  [tf.TensorSpec(None, tf.float32, name="signal")], ["energy"], tmp_path / "rank.pb")
    prepared = make_prepared_from_frozen(path, [TensorInfo("signal", "float32", None)], ["energy"])
    assert "Rank" in {n.op for n in prepared.graph_def.node}
    outdir, lines = convert(prepared, tmp_path)
    assert any("unknown rank" in ln for ln in lines)
    for shape in ([2, 3], [2, 3, 4]):
        assert max_diff(prepared, outdir, feeds_for(prepared, {"signal": shape})) <= 1e-4


def test_unsupported_op_names_op_and_node(tf, tmp_path):
    path = freeze(tf, lambda x: [tf.math.lgamma(x) + 1.0], [tf.TensorSpec([None, 4], tf.float32, name="x")], ["y"],
                  tmp_path / "lgamma.pb")
    prepared = make_prepared_from_frozen(path, [TensorInfo("x", "float32", [-1, 4])], ["y"])
    with pytest.raises(ConversionFailed, match=r"Lgamma \(nodes: .*Lgamma"):
        convert(prepared, tmp_path)
    import onnx  # a handler that failed is only in tf2onnx's log: that fails the conversion too

    with pytest.raises(ConversionFailed, match=r"failed on 1 node\(s\): Failed to convert node 'a/b'$"):
        _check_converted(onnx.ModelProto(), ["Failed to convert node 'a/b' (fct=<function f>)", "other"])


def test_bad_options_are_user_errors_before_converting():
    info = inspect(detect(SAMPLES / "frozen_graph.pb"))  # check() runs in plan(): no TensorFlow, no conversion
    with pytest.raises(UserError, match="--opset 19"):
        BACKEND.check(options(opset=19), info)
    with pytest.raises(UserError, match="--inputs-as-nchw nope"):
        BACKEND.check(options(inputs_as_nchw=("nope",)), info)
    BACKEND.check(options(opset=18, inputs_as_nchw=("input:0",)), info)


def test_preflight_reads_op_file_without_tensorflow():
    code = ("import sys; from engine.backends.onnx import BACKEND as B; "
            "print(B.preflight({'Placeholder': 1, 'Const': 3, 'VarHandleOp': 1, 'Conv2D': 2, 'Rank': 1, 'Lgamma': 1,"
            " 'BitwiseAnd': 1})); print(sorted(m for m in ('tensorflow', 'tf2onnx', 'onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=scratch_dir(), capture_output=True, text=True, check=True).stdout
    blocked, heavy = out.splitlines()
    assert eval(blocked) == {"Lgamma": "tf2onnx has no conversion for it",
                             "BitwiseAnd": "needs --opset 18 or newer (default 15)"}
    assert heavy == "[]"


def test_op_file_is_current(tf, tmp_path):
    write_ops_file(tmp_path / "ops.txt")
    assert (tmp_path / "ops.txt").read_text() == OPS_FILE.read_text(), "regenerate: python -m engine.backends.onnx"


def test_upstream_command_spelling():
    def argv(model, **kw):
        opts = options(model=str(SAMPLES / model), output_dir="OUT", **kw)
        cmd = BACKEND.upstream_command(opts, inspect(detect(opts.model), tag=opts.tag, signature=opts.signature))
        return cmd and " ".join(cmd).replace(str(SAMPLES) + "/", "")

    assert argv("frozen_graph.pb", batch=1, opset=13) == (
        "python -m tf2onnx.convert --graphdef frozen_graph.pb --inputs input:0[1,8] --rename-inputs input "
        "--outputs output:0 --rename-outputs output --opset 13 --output OUT/onnx/model.onnx")
    assert argv("image_classifier", inputs_as_nchw=("image",), inputs=(("image", (1, 32, 32, 3)),)) == (
        "python -m tf2onnx.convert --saved-model image_classifier --tag serve --signature_def serving_default "
        "--inputs image:0[1,32,32,3] --rename-inputs image --opset 15 "  # the TF2 signature function's names
        "--inputs-as-nchw image:0 --output OUT/onnx/model.onnx")
    assert argv("metagraph/model.meta") == (  # the is_training switch keeps its default, as ours does
        "python -m tf2onnx.convert --checkpoint metagraph/model.meta --inputs x:0 --rename-inputs x "
        "--outputs probs:0 --rename-outputs probs --opset 15 --output OUT/onnx/model.onnx")
    assert argv("keras2_functional.h5", batch=1) == (  # --keras takes no shapes: its model stays dynamic
        "env TF_USE_LEGACY_KERAS=1 python -m tf2onnx.convert --keras keras2_functional.h5 --rename-inputs a,b --rename-outputs out "
        "--opset 15 --output OUT/onnx/model.onnx")
    assert argv("keras_sequential.keras").startswith("python -m tf2onnx.convert --keras keras_sequential.keras ")
    for cannot in ("frozen_graph.pbtxt", "slim_checkpoint"):
        assert argv(cannot) is None, cannot
    # what tf2onnx cannot do: quantize, bake in mean/scale, cut a SavedModel's or a Keras model's outputs
    assert argv("frozen_graph.pb", quantize={"onnx": "int8"}) is None
    assert argv("image_classifier", preset="mobilenet") is None
    assert argv("dynamic_shapes", outputs=("energy",)) is None
    assert argv("keras2_functional.h5", outputs=("out",)) is None
    assert argv("saved_model_tf1", tag="serve,gpu") is None  # tf2onnx passes --tag on as one tag


def test_upstream_command_of_a_model_over_two_gib_says_large_model(tmp_path):
    """tf2onnx needs --large_model past protobuf's 2 GB (and then writes a zip); the size comes from the
    files on disk, here a sparse 2.1 GB file beside a real SavedModel (nothing is read or loaded)."""
    import shutil

    model = tmp_path / "image_classifier"
    shutil.copytree(SAMPLES / "image_classifier", model)
    with open(model / "assets.bin", "wb") as f:
        f.truncate(2200 << 20)
    opts = options(model=str(model), output_dir="OUT")
    cmd = " ".join(BACKEND.upstream_command(opts, inspect(detect(opts.model))))
    assert cmd.endswith("--opset 15 --large_model --output OUT/onnx/model.zip"), cmd
    (model / "assets.bin").unlink()
    cmd = " ".join(BACKEND.upstream_command(opts, inspect(detect(opts.model))))
    assert "--large_model" not in cmd and cmd.endswith("--output OUT/onnx/model.onnx"), cmd
