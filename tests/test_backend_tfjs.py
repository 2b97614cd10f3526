"""TF.js backend: real conversions, run by @tensorflow/tfjs 4.22 in Node, compared with TensorFlow."""

from conftest import backend_options, convert_into, make_prepared_from_frozen, tf_outputs as reference, scratch_dir
import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.backends import Prepared, tfjs
from engine.detect import detect
from engine.errors import UserError
from engine.inspect import TensorInfo, inspect
from engine.verify import compare

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_models"
BACKEND = tfjs.BACKEND
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")




def freeze_signature(saved_model_dir, out_pb):
    """Freeze a TF2 SavedModel's serving_default into `out_pb` with Identity outputs named by key."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    loaded = tf.saved_model.load(str(saved_model_dir))  # keep alive: the signature holds weak refs to its variables
    fn = loaded.signatures["serving_default"]
    frozen = convert_variables_to_constants_v2(fn)
    graph_def = frozen.graph.as_graph_def()
    keys = sorted(fn.structured_outputs)  # flattened outputs follow the sorted keys
    for key, tensor in zip(keys, frozen.outputs):
        node = graph_def.node.add(name=key, op="Identity", input=[tensor.op.name])
        node.attr["T"].type = tensor.dtype.as_datatype_enum
    Path(out_pb).write_bytes(graph_def.SerializeToString())
    specs = fn.structured_input_signature[1]
    inputs = [TensorInfo(k, s.dtype.name, None if s.shape.rank is None else [d or -1 for d in s.shape.as_list()])
              for k, s in specs.items()]
    return inputs, keys


options = functools.partial(backend_options, "tfjs")


def feeds_for(inputs, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in inputs:
        shape = [2 if d == -1 else d for d in (i.shape if i.shape is not None else [2, 3])]
        feeds[i.name] = (rng.integers(0, 120, shape).astype(i.dtype) if "int" in i.dtype
                         else rng.standard_normal(shape).astype(i.dtype))
    return feeds


convert = functools.partial(convert_into, BACKEND)  # (prepared, opts, tmp_path) → (directory, log lines)


def max_diffs(got, want):
    assert set(got) == set(want)
    return {k: float(np.max(np.abs(got[k].astype(np.float64) - want[k]))) for k in want}


@pytest.fixture(scope="module")
def frozen():
    return make_prepared_from_frozen(SAMPLES / "frozen_graph.pb", [TensorInfo("input", "float32", [-1, 8])], ["output"])


@pytest.fixture(scope="module")
def dynamic(tmp_path_factory):
    pb = tmp_path_factory.mktemp("dynamic") / "dynamic_shapes.pb"
    return make_prepared_from_frozen(pb, *freeze_signature(SAMPLES / "dynamic_shapes", pb))


# --- no TensorFlow needed ----------------------------------------------------------------------


def test_import_is_cheap():
    code = ("import sys, engine.backends.tfjs as t; t.BACKEND.preflight({'MatMul': 1}); "
            "print(sorted(m for m in ('tensorflow', 'tensorflowjs') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=scratch_dir(), check=True)
    assert out.stdout.strip() == "[]"


def test_preflight_names_only_ops_tfjs_lacks():
    ops = {"MatMul": 2, "Lgamma": 1, "VarHandleOp": 1, "ReadVariableOp": 1, "StatefulPartitionedCall": 2,
           "Assert": 1, "Placeholder": 1, "MatrixInverse": 1}
    assert sorted(BACKEND.preflight(ops)) == ["Lgamma", "MatrixInverse"]
    assert BACKEND.preflight({"InputLayer": 1, "Dense": 2}) == {}  # Keras layer inventory: not TF ops


def test_upstream_command_none_where_upstream_cannot_read_the_input():
    for name in ("frozen_graph.pbtxt", "metagraph", "tf1_checkpoint_v2/inference_graph.pb", "keras_functional.keras"):
        path = SAMPLES / name
        assert BACKEND.upstream_command(options(model=str(path)), inspect(detect(path))) is None, name


# --- conversions -------------------------------------------------------------------------------


@needs_node
def test_frozen_graph_matches_tensorflow(frozen, tmp_path):
    out, lines = convert(frozen, options(), tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["group1-shard1of1.bin", "model.json"]
    assert any("weights 768 bytes" in line for line in lines)
    feeds = feeds_for(frozen.inputs)
    diffs = max_diffs(BACKEND.load(out, frozen)(feeds), reference(frozen, feeds))
    assert diffs["output"] <= BACKEND.tolerance(options()).atol == 1e-4


@needs_node
def test_int_and_unknown_rank_inputs_quantized_structured_metadata(dynamic, tmp_path):
    (tmp_path / "meta.json").write_text('{"labels": ["a", "b"]}')
    opts = options(quantize={"tfjs": ("float16", ("unknown",))}, weight_shard_size_bytes=1000, use_structured_outputs_names=True,
                   metadata=(f"info:{tmp_path / 'meta.json'}",))
    out, lines = convert(dynamic, opts, tmp_path)
    model_json = json.loads((out / "model.json").read_text())
    assert model_json["userDefinedMetadata"] == {"info": {"labels": ["a", "b"]}, "structuredOutputKeys": ["energy", "pooled"]}
    quantized = {w["name"] for w in model_json["weightsManifest"][0]["weights"] if w.get("quantization")}
    assert quantized == {"unknown"}  # the pattern picked the embedding table only
    assert len(model_json["weightsManifest"][0]["paths"]) == 2  # 1,624 bytes in shards of <= 1000
    assert any("3,224 bytes as float32 -> 1,624 bytes (float16)" in line for line in lines)
    feeds = feeds_for(dynamic.inputs)
    assert feeds["tokens"].dtype == np.int32 and feeds["signal"].ndim == 2
    check = compare(reference(dynamic, feeds), BACKEND.load(out, dynamic)(feeds), BACKEND.tolerance(opts))
    assert check["passed"] and check["tolerance"] == 1e-2


def test_unsupported_op_names_op_and_node(tmp_path):
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        tf.identity(tf.math.lgamma(x, name="log_gamma"), name="y")
    pb = tmp_path / "lgamma.pb"
    pb.write_bytes(graph.as_graph_def().SerializeToString())
    prepared = make_prepared_from_frozen(pb, [TensorInfo("x", "float32", [-1, 3])], ["y"])
    with pytest.raises(tfjs.ConversionFailed, match=r"Lgamma \(log_gamma\)"):
        convert(prepared, options(), tmp_path)


@needs_node
def test_layers_model_from_keras2_h5(tmp_path):
    import tf_keras

    path = SAMPLES / "keras2_functional.h5"
    inputs = [TensorInfo("a", "float32", [-1, 4]), TensorInfo("b", "float32", [-1, 4])]
    prepared = Prepared(graph_def=None, graph_path=None, inputs=inputs, outputs=["out"], keras_path=path)
    out, _ = convert(prepared, options(tfjs_format="layers"), tmp_path)
    assert json.loads((out / "model.json").read_text())["format"] == "layers-model"
    feeds = feeds_for(inputs)
    want = tf_keras.models.load_model(path, compile=False).predict([feeds["a"], feeds["b"]], verbose=0)
    assert max_diffs(BACKEND.load(out, prepared)(feeds), {"out": want})["out"] <= 1e-4


def test_layers_format_refuses_non_keras_and_keras3(frozen, tmp_path):
    with pytest.raises(UserError, match="needs a Keras model"):  # in plan(), before converting
        BACKEND.check(options(tfjs_format="layers"), inspect(detect(SAMPLES / "frozen_graph.pb")))
    keras3 = Prepared(graph_def=None, graph_path=None, inputs=[], outputs=["scores"],
                      keras_path=SAMPLES / "keras_sequential.keras")
    with pytest.raises(UserError, match="Keras 3"):
        convert(keras3, options(tfjs_format="layers"), tmp_path)
    assert sorted(p.name for p in SAMPLES.glob("*.json")) == ["manifest.json"]  # nothing unzipped beside it


def test_missing_node_is_reported_as_verifier_unavailable(frozen, tmp_path, monkeypatch):
    monkeypatch.setattr(tfjs.shutil, "which", lambda name: None)
    with pytest.raises(tfjs.VerifierUnavailable, match="node not found"):
        BACKEND.load(tmp_path, frozen)


# --- the upstream CLI ----------------------------------------------------------------------------


def test_upstream_flags_parse_as_meant():
    get_arg_parser = tfjs._import_tfjs("converter", log=lambda message: None).get_arg_parser  # as the backend imports it

    path = SAMPLES / "saved_model_tf2"
    opts = options(model=str(path), quantize={"tfjs": "uint8"}, strip_debug_ops=False, control_flow_v2=True,
                   weight_shard_size_bytes=1000, metadata=("a:/m/a.json", "b:/m/b.json"), signature="scale")
    argv = BACKEND.upstream_command(opts, inspect(detect(path), signature="scale"))
    assert argv[0] == "tensorflowjs_converter"
    # pip_main re-joins argv with spaces and splits again: parse exactly what it would.
    args = get_arg_parser().parse_args(" ".join(argv[1:]).split(" "))
    assert (args.input_path, args.output_path) == (str(path), os.path.join("out", "tfjs"))
    assert (args.input_format, args.output_format, args.signature_name) == ("tf_saved_model", "tfjs_graph_model", "scale")
    assert args.quantize_uint8 is True and args.strip_debug_ops is False and args.control_flow_v2 is True
    assert args.use_structured_outputs_names is False and args.weight_shard_size_bytes == 1000
    assert args.metadata == "a:/m/a.json,b:/m/b.json"
    frozen_argv = BACKEND.upstream_command(options(model="g.pb", quantize={"tfjs": ("float16", ("fc1/*", "fc2/*"))}),
                                           inspect(detect(SAMPLES / "frozen_graph.pb")))
    args = get_arg_parser().parse_args(" ".join(frozen_argv[1:]).split(" "))
    assert (args.input_format, args.output_node_names, args.quantize_float16) == ("tf_frozen_model", "output", "fc1/*,fc2/*")
    assert args.strip_debug_ops is True
