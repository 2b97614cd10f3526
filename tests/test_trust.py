"""Hostile model files, built here: every rule in engine.safety refuses its file without --trust-model,
before anything loads; the Landlock sandbox (engine.sandbox) stops what gets past the check."""

import json
import socket
import subprocess
import sys
import zipfile

import pytest

from conftest import COUNTS, MANIFEST, REPO, SAMPLES, assert_clean_error, run_cli
from engine import safety
from engine.plan import plan
from engine.detect import detect
from engine.errors import UserError
from engine.inspect import inspect
from engine.options import ConversionOptions
from engine.protos import GraphDef, MetaGraphDef, saved_model_class

TALLY = {"refused": 0, "blocked": 0}


def _count(kind: str) -> None:
    TALLY[kind] += 1
    COUNTS["hostile models"] = f"{TALLY['refused']} refused before loading, {TALLY['blocked']} writes blocked by the sandbox"


def assert_refused(path, needle: str, **options) -> str:
    """inspect flags `needle`, and convert (plan) refuses without --trust-model and accepts the flag."""
    risks = inspect(detect(path)).code_risks
    assert any(needle in r for r in risks), risks
    with pytest.raises(UserError, match="--trust-model") as e:
        plan(ConversionOptions(model=str(path), targets=("onnx",), output_dir="unused", **options))
    assert needle in str(e.value)
    _count("refused")
    return str(e.value)


# --- graph ops: one hand-made GraphDef per rule, in the main graph and in a function ---------------


def _graph_with(op: str, *, in_function: bool = False, attrs: dict | None = None) -> GraphDef:
    """x -> y (the output), y with a control dependency on a node of type `op`."""
    g = GraphDef()
    x = g.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = 1
    if in_function:
        f = g.library.function.add()
        f.signature.name = "helper"
        body = f.node_def.add(name="hostile", op=op)
        call = g.node.add(name="call", op="helper")
        risky_name = call.name
    else:
        body = g.node.add(name="hostile", op=op)
        risky_name = body.name
    for key, value in (attrs or {}).items():
        body.attr[key].s = value.encode()
    y = g.node.add(name="y", op="Identity", input=["x", f"^{risky_name}"])
    y.attr["T"].type = 1
    return g


RISKY = sorted(safety.RISKY_OPS)


def test_every_listed_op_is_a_tensorflow_op():
    assert set(RISKY) | set(safety.FILE_ATTRS) <= safety.registered_ops()


def test_registered_op_list_is_tensorflow_s():
    # In a fresh process: plain TensorFlow's ops. Other tests' imports (tensorflowjs brings TF-DF's
    # SimpleML* ops, LiteRT its TFLite_* ones) register more in this one; a model must not need them.
    code = ("from tensorflow.core.framework import op_def_pb2\n"
            "from tensorflow.python.client import pywrap_tf_session as c\n"
            "ops = op_def_pb2.OpList(); ops.ParseFromString(c.TF_GetBuffer(c.TF_GetAllOpList()))\n"
            "print('\\n'.join(sorted(o.name for o in ops.op)))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(proc.stdout.split()) == safety.registered_ops(), "regenerate it: python -m engine.safety"


@pytest.mark.parametrize("in_function", [False, True], ids=["graph", "function"])
@pytest.mark.parametrize("op", RISKY)
def test_risky_op_is_refused(op, in_function, tmp_path):
    path = tmp_path / "g.pb"
    path.write_bytes(_graph_with(op, in_function=in_function).SerializeToString())
    message = assert_refused(path, f"{op} node 'hostile'")
    assert ("function 'helper'" in message) == in_function


@pytest.mark.parametrize("op", sorted(safety.FILE_ATTRS))
def test_op_writing_to_a_file_by_attribute_is_refused(op, tmp_path):
    attr, prefix = safety.FILE_ATTRS[op]
    path = tmp_path / "g.pb"
    path.write_bytes(_graph_with(op, attrs={attr: f"{prefix}{tmp_path}/x"}).SerializeToString())
    assert_refused(path, f"{op} node 'hostile'")
    path.write_bytes(_graph_with(op, attrs={attr: "stderr"}).SerializeToString())
    assert inspect(detect(path)).code_risks == []  # printing to the log is fine


def test_custom_op_is_refused(tmp_path):
    path = tmp_path / "g.pb"
    path.write_bytes(_graph_with("ZeroOutCustom").SerializeToString())
    assert "custom op" in assert_refused(path, "ZeroOutCustom node 'hostile'")


def test_checkpoint_ops_of_a_save_scope_are_the_model_s_own(tmp_path):
    g = _graph_with("Identity")
    for name, op in (("save/SaveV2", "SaveV2"), ("save/RestoreV2", "RestoreV2"), ("save/MergeV2Checkpoints", "MergeV2Checkpoints")):
        g.node.add(name=name, op=op)
    path = tmp_path / "g.pb"
    path.write_bytes(g.SerializeToString())
    assert inspect(detect(path)).code_risks == []
    g.node[-1].name = "elsewhere/MergeV2Checkpoints"  # outside the saver's scope
    path.write_bytes(g.SerializeToString())
    assert_refused(path, "MergeV2Checkpoints node 'elsewhere/MergeV2Checkpoints'")


def test_restore_feeding_the_output_is_refused_even_in_a_save_scope(tmp_path):
    g = _graph_with("Identity")
    g.node.add(name="save/RestoreV2", op="RestoreV2")
    g.node[2].input.append("^save/RestoreV2")  # y now depends on it: it runs when y is computed
    path = tmp_path / "g.pb"
    path.write_bytes(g.SerializeToString())
    assert_refused(path, "RestoreV2 node 'save/RestoreV2'")


def _saved_model(tmp_path, meta: MetaGraphDef):
    message = saved_model_class()()
    message.saved_model_schema_version = 1
    message.meta_graphs.add().CopyFrom(meta)
    directory = tmp_path / "sm"
    directory.mkdir(exist_ok=True)
    (directory / "saved_model.pb").write_bytes(message.SerializeToString())
    return directory


def _meta_with_saver(extra_restore_op: str | None = None) -> MetaGraphDef:
    meta = MetaGraphDef()
    meta.meta_info_def.tags.append("serve")
    meta.graph_def.CopyFrom(_graph_with("Identity"))
    g = meta.graph_def
    g.node.add(name="save/Const", op="Const")
    g.node.add(name="save/SaveV2", op="SaveV2", input=["save/Const"])
    g.node.add(name="save/control_dependency", op="Identity", input=["save/Const", "^save/SaveV2"])
    g.node.add(name="save/RestoreV2", op="RestoreV2", input=["save/Const"])
    restore = g.node.add(name="save/restore_all", op="NoOp", input=["^save/RestoreV2"])
    if extra_restore_op:
        g.node.add(name="save/extra", op=extra_restore_op, input=["save/Const"])
        restore.input.append("^save/extra")
    meta.saver_def.filename_tensor_name = "save/Const:0"
    meta.saver_def.save_tensor_name = "save/control_dependency:0"
    meta.saver_def.restore_op_name = "save/restore_all"
    sig = meta.signature_def["serving_default"]
    sig.inputs["x"].name = "x:0"
    sig.outputs["y"].name = "y:0"
    return meta


def test_a_savedmodel_s_own_saver_is_not_flagged(tmp_path):
    assert inspect(detect(_saved_model(tmp_path, _meta_with_saver()))).code_risks == []


def test_saving_on_the_restore_path_is_refused(tmp_path):
    """restore_all runs on load: a SaveV2 hung on it would write a checkpoint wherever its prefix says."""
    assert_refused(_saved_model(tmp_path, _meta_with_saver("SaveV2")), "SaveV2 node 'save/extra'")


@pytest.mark.parametrize("collection", safety.INIT_COLLECTIONS)
def test_init_op_is_scanned_and_named(collection, tmp_path):
    meta = _meta_with_saver()
    meta.graph_def.node.add(name="init_write", op="WriteFile")
    meta.collection_def[collection].node_list.value.append("init_write")
    message = assert_refused(_saved_model(tmp_path, meta), "WriteFile node 'init_write'")
    assert "init op" in message


def test_table_from_an_asset_is_the_model_s_own_but_not_from_a_path(tmp_path):
    meta = _meta_with_saver()
    g = meta.graph_def
    g.node.add(name="asset_path", op="Const")
    g.node.add(name="table", op="HashTableV2")
    g.node.add(name="init_table", op="InitializeTableFromTextFileV2", input=["table", "asset_path"])
    meta.collection_def["table_initializer"].node_list.value.append("init_table")
    asset = meta.asset_file_def.add(filename="vocab.txt")
    asset.tensor_info.name = "asset_path:0"
    directory = _saved_model(tmp_path, meta)
    (directory / "assets").mkdir()
    (directory / "assets" / "vocab.txt").write_text("a\nb\n")
    assert inspect(detect(directory)).code_risks == []
    del meta.asset_file_def[:]  # now the path is just a constant: /etc/passwd as far as we know
    assert_refused(_saved_model(tmp_path, meta), "InitializeTableFromTextFileV2 node 'init_table'")


# --- Keras configs: .keras archives written by hand ------------------------------------------------


def _keras_file(tmp_path, layer: dict, name="m.keras"):
    config = {"module": "keras", "class_name": "Sequential", "registered_name": None, "config": {"name": "s", "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
         "config": {"name": "x", "batch_shape": [None, 4], "dtype": "float32"}}, layer]}}
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        z.writestr("model.weights.h5", b"")
    return path


def _layer(cls, config, module="keras.layers", registered=None):
    return {"module": module, "class_name": cls, "registered_name": registered, "config": {"name": "l", **config}}


HOSTILE_TF_FUNCTIONS = ["io.write_file", "io.read_file", "load_op_library", "load_library", "raw_ops.WriteFile",
                        "py_function", "numpy_function", "compat.v1.py_func", "print", "saved_model.load",
                        "keras.utils.get_file", "math.../../os", "nn.x.y"]


@pytest.mark.parametrize("function", HOSTILE_TF_FUNCTIONS)
def test_tfoplambda_outside_the_allowlist_is_refused(function, tmp_path):
    path = _keras_file(tmp_path, _layer("TFOpLambda", {"function": function}))
    assert_refused(path, f"calls tf.{function}")


def test_allowlisted_tf_functions_exist_and_do_not_touch_files(tf):
    names = sorted(safety.PURE_TF_FUNCTIONS) + [f"{ns}{fn}" for ns, fn in (
        ("math.", "add"), ("nn.", "relu"), ("linalg.", "matmul"), ("signal.", "rfft"), ("image.", "resize"),
        ("bitwise.", "bitwise_and"), ("random.", "uniform"))]
    for name in names:
        obj = tf
        for part in name.split("."):
            obj = getattr(obj, part)
        assert callable(obj), name
        assert not set(name.split(".")) & {"io", "file", "write", "load"}, name
    assert all(safety.pure_tf_function(n) for n in names)


def test_allowed_tfoplambda_is_not_flagged(tmp_path):
    assert inspect(detect(_keras_file(tmp_path, _layer("TFOpLambda", {"function": "math.add"})))).code_risks == []


@pytest.mark.parametrize("cls", sorted(safety.RISKY_KERAS_CLASSES))
def test_risky_keras_class_is_refused(cls, tmp_path):
    assert_refused(_keras_file(tmp_path, _layer(cls, {})), f"{cls} 'l'")


@pytest.mark.parametrize("key", sorted(safety.FILE_PATH_KEYS))
def test_layer_config_naming_a_file_is_refused(key, tmp_path):
    path = _keras_file(tmp_path, _layer("StringLookup", {key: "/etc/passwd"}))
    assert_refused(path, "reads the file '/etc/passwd'")
    inline = _keras_file(tmp_path, _layer("StringLookup", {key: ["a", "b"]}), name="inline.keras")
    assert inspect(detect(inline)).code_risks == []  # a list is inline data


@pytest.mark.parametrize("layer, needle", [
    (_layer("Dense", {}, registered="keras>Lambda"), "registered_name 'keras>Lambda'"),
    (_layer("Dense", {}, registered="Lambda"), "registered_name 'Lambda'"),
    (_layer("Dense", {}, module="keras.src.layers/../../os"), "from module 'keras.src.layers/../../os'"),
    (_layer("Dense", {}, module="keras.src.../../os"), "from module 'keras.src.../../os'"),
    (_layer("os.system", {}), "class name 'os.system'"),
], ids=["keras>Lambda", "bare-Lambda", "module-traversal", "module-dots", "dotted-class"])
def test_keras_name_spoofing_is_refused(layer, needle, tmp_path):
    assert_refused(_keras_file(tmp_path, layer), needle)


# --- real TensorFlow files, end to end through the CLI -------------------------------------------


@pytest.fixture(scope="module")
def tf():
    from engine.prepare import import_tensorflow

    return import_tensorflow()


@pytest.fixture(scope="module")
def hostile(tf, tmp_path_factory):
    """A frozen graph and a TF1 SavedModel that write `target` (a file outside any output)."""
    root = tmp_path_factory.mktemp("hostile")
    target = root / "victim" / "pwned.txt"
    target.parent.mkdir()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 4], name="x")
        write = tf.raw_ops.WriteFile(filename=str(target), contents="pwned", name="write")
        with tf.control_dependencies([write]):
            y = tf.identity(x * 2.0, name="y")
        with tf.compat.v1.Session() as sess:
            sess.run(y, {x: [[1, 2, 3, 4]]})  # proof that running it writes the file
    assert target.read_text() == "pwned"
    target.unlink()
    frozen = root / "frozen" / "write.pb"
    frozen.parent.mkdir()
    frozen.write_bytes(graph.as_graph_def().SerializeToString())

    saved = root / "tf1_main_op"
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session() as sess:
        x = tf.compat.v1.placeholder(tf.float32, [1, 4], name="x")
        y = tf.identity(x * 2.0, name="y")
        main_op = tf.raw_ops.WriteFile(filename=str(target), contents="pwned", name="main_write")
        builder = tf.compat.v1.saved_model.Builder(str(saved))
        sig = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
        builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig}, main_op=main_op)
        builder.save()
    assert not target.exists()
    return {"target": target, "frozen": frozen, "saved": saved}


def test_inspect_shows_graph_risks_as_text_and_json(hostile):
    text = run_cli("inspect", hostile["frozen"])
    assert text.returncode == 0 and "WriteFile node 'write'" in text.stdout and "--trust-model" in text.stdout
    doc = json.loads(run_cli("inspect", hostile["saved"], "--json").stdout)
    assert any("WriteFile node 'main_write'" in r and "init op" in r for r in doc["code_risks"]), doc["code_risks"]


@pytest.mark.parametrize("model, needle, extra", [
    ("frozen", "WriteFile node 'write'", []),
    ("saved", "WriteFile node 'main_write'", ["--no-verify"]),
])
def test_convert_refuses_graph_that_writes_and_nothing_is_written(hostile, model, needle, extra, tmp_path):
    for dry in ([], ["--dryrun"]):
        proc = run_cli("convert", hostile[model], "--to", "onnx", "-o", tmp_path / "out", *extra, *dry)
        assert_clean_error(proc, needle, "--trust-model")
    assert not hostile["target"].exists() and not (tmp_path / "out").exists()
    _count("refused")


@pytest.mark.parametrize("model, extra", [("frozen", []), ("saved", ["--no-verify"])])
def test_sandbox_stops_a_trusted_model_writing_outside_the_output(hostile, model, extra, tmp_path):
    """--trust-model lifts the static check, not the sandbox: the WriteFile TensorFlow runs is denied."""
    from engine.sandbox import abi_version

    if not abi_version():
        pytest.skip("no Landlock on this kernel")
    proc = run_cli("convert", hostile[model], "--to", "onnx", "-o", tmp_path / "out", "--trust-model", *extra,
                   timeout=300)
    assert not hostile["target"].exists(), proc.stderr
    assert proc.returncode == 2, proc.stderr
    (error,) = [line for line in proc.stderr.splitlines() if "error" in line]
    assert "the sandbox forbids" in error and "Permission denied" in error, error
    _count("blocked")


def _confined(tmp_path, code: str) -> subprocess.CompletedProcess:
    """Run `code` in a Python process confined as the worker would be for converting tmp_path/m/model.pb."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.pb").write_bytes(b"")
    (tmp_path / "tmp").mkdir()
    options = f"ConversionOptions(model={str(tmp_path / 'm' / 'model.pb')!r}, targets=('onnx',), output_dir={str(tmp_path / 'o')!r})"
    prelude = ("from engine import sandbox; from engine.options import ConversionOptions\n"
               f"assert sandbox.confine({options}, {str(tmp_path / 'tmp')!r}) == []\n")
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=REPO, timeout=60)


def test_sandbox_allows_the_output_and_blocks_writes_reads_and_tcp_elsewhere(tmp_path):
    from engine.sandbox import abi_version

    if not abi_version():
        pytest.skip("no Landlock on this kernel")
    (tmp_path / "secret.txt").write_text("secret")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    try:
        proc = _confined(tmp_path, f"""
import socket
open({str(tmp_path / 'tmp' / 'ok.txt')!r}, 'w').write('ok')
open({str(tmp_path / 'm' / 'model.pb')!r}, 'rb').read()
for attempt in (lambda: open({str(tmp_path / 'escaped.txt')!r}, 'w'), lambda: open({str(tmp_path / 'secret.txt')!r}),
                lambda: socket.create_connection(('127.0.0.1', {port}), timeout=5)):
    try:
        attempt()
        print('allowed')
    except PermissionError:
        print('denied')
""")
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["denied"] * 3
    assert (tmp_path / "tmp" / "ok.txt").read_text() == "ok" and not (tmp_path / "escaped.txt").exists()
    _count("blocked")


def test_samples_are_not_flagged_by_the_graph_rules():
    for entry in MANIFEST:
        if entry["format"] != "keras_weights_only" and not entry.get("trust_required"):
            assert inspect(detect(SAMPLES / entry["path"])).code_risks == [], entry["path"]
