"""Bad input gets one line naming the problem and the fix, exit 2, no traceback, nothing written."""

import os
import shutil

import pytest

from conftest import SAMPLES, assert_clean_error, run_cli


def test_missing_path(tmp_path):
    assert_clean_error(run_cli("inspect", tmp_path / "nope.pb"), "no such file", "check the path")


def test_empty_file(tmp_path):
    (tmp_path / "model.pb").write_bytes(b"")
    assert_clean_error(run_cli("inspect", tmp_path / "model.pb"), "empty")


@pytest.mark.parametrize("suffix", [".pb", ".pbtxt", ".meta", ".h5", ".keras", ".bin"])
def test_random_bytes(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(os.urandom(4096))
    assert_clean_error(run_cli("inspect", path), str(path))


def test_truncated_graphdef(tmp_path):
    data = (SAMPLES / "frozen_graph.pb").read_bytes()
    path = tmp_path / "frozen_graph.pb"
    path.write_bytes(data[: len(data) * 2 // 3])
    assert_clean_error(run_cli("inspect", path), "truncated or corrupt")


def test_directory_with_nothing_recognisable(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert_clean_error(run_cli("inspect", tmp_path), "nothing recognisable", "SavedModel")


def test_saved_model_without_variables(tmp_path):
    copy = tmp_path / "sm"
    shutil.copytree(SAMPLES / "saved_model_tf2", copy)
    shutil.rmtree(copy / "variables")
    assert_clean_error(run_cli("inspect", copy), "variables", "copy the whole SavedModel")


def test_wrong_tag():
    line = assert_clean_error(run_cli("inspect", SAMPLES / "saved_model_tf1", "--tag", "train"), "--tag")
    assert "serve" in line  # names the tags that do exist


def test_wrong_signature():
    line = assert_clean_error(run_cli("inspect", SAMPLES / "saved_model_tf2", "--signature", "nope"), "--signature")
    assert "serving_default" in line and "scale" in line


def test_keras_weights_only_is_refused_with_what_is_missing():
    assert_clean_error(run_cli("inspect", SAMPLES / "keras_weights_only.weights.h5"), "weights-only", "architecture")


def test_bare_checkpoint_asks_for_the_graph():
    prefix = SAMPLES / "tf1_checkpoint_v2" / "model.ckpt.index"
    assert_clean_error(run_cli("inspect", prefix), "checkpoint", "pass the graph")


def test_metagraph_without_its_checkpoint(tmp_path):
    shutil.copy(SAMPLES / "metagraph" / "model.meta", tmp_path / "model.meta")
    assert_clean_error(run_cli("inspect", tmp_path / "model.meta"), "no checkpoint", "--checkpoint")


def test_graph_with_variables_but_no_checkpoint(tmp_path):
    shutil.copy(SAMPLES / "tf1_checkpoint_v2" / "inference_graph.pb", tmp_path / "g.pb")
    assert_clean_error(run_cli("inspect", tmp_path / "g.pb"), "variables", "--checkpoint")


def test_symlink_loop(tmp_path):
    loop = tmp_path / "loop.pb"
    os.symlink(loop, loop)
    assert_clean_error(run_cli("inspect", loop), str(loop))


def test_tag_on_a_graph_is_a_usage_error():
    assert_clean_error(run_cli("inspect", SAMPLES / "frozen_graph.pb", "--tag", "serve"), "SavedModels only")


@pytest.mark.parametrize(
    "name, content, what",
    [
        ("model.json", b'{"format": "graph-model", "modelTopology": {}, "weightsManifest": []}', "TensorFlow.js"),
        ("model.tflite", b"\x1c\x00\x00\x00TFL3" + bytes(64), "TFLite"),
    ],
)
def test_out_of_scope_formats_are_named(tmp_path, name, content, what):
    (tmp_path / name).write_bytes(content)
    assert_clean_error(run_cli("inspect", tmp_path / name), what, "out of scope")


def test_graph_cut_between_two_nodes_is_flagged(tmp_path):
    """Nodes come in order, so a GraphDef cut at a node boundary still parses and is consistent;
    only the missing `versions` record (written last) gives it away. Refusing would also refuse
    hand-built graphs, so inspect warns; a cut inside a node is refused."""
    from engine.skim import wire_fields

    data = (SAMPLES / "frozen_graph.pb").read_bytes()
    ends = [end for number, _, _, end, _ in wire_fields(data, 0, len(data)) if number == 1]
    (tmp_path / "cut.pb").write_bytes(data[: ends[len(ends) // 2]])
    proc = run_cli("inspect", tmp_path / "cut.pb")
    assert proc.returncode == 0 and "no versions record" in proc.stdout and "cut short" in proc.stdout
    assert "versions record" not in run_cli("inspect", SAMPLES / "frozen_graph.pb").stdout
    (tmp_path / "inside.pb").write_bytes(data[: ends[len(ends) // 2] - 3])
    assert_clean_error(run_cli("inspect", tmp_path / "inside.pb"), "truncated or corrupt")


def test_graph_with_dangling_input_is_refused(tmp_path):
    """A node naming an input that is not in the graph: damaged (or cut) - refused before TensorFlow."""
    from engine.protos import GraphDef

    graph = GraphDef()
    graph.ParseFromString((SAMPLES / "frozen_graph.pb").read_bytes())
    del graph.node[1]  # the first weights Const, which fc1/MatMul reads
    (tmp_path / "g.pb").write_bytes(graph.SerializeToString())
    assert_clean_error(run_cli("inspect", tmp_path / "g.pb"), "takes input", "not in the graph", "truncated or corrupt")


def test_a_model_whose_name_is_not_utf8_is_reported_under_a_strict_locale(tmp_path):
    """Under en_US.UTF-8 Python's stdout is 'strict': printing the surrogate-escaped name crashed."""
    import subprocess
    import sys

    name = os.fsdecode(b"model-\xff.pb")
    shutil.copy(SAMPLES / "frozen_graph.pb", tmp_path / name)
    proc = subprocess.run([sys.executable, "-m", "wizard", "inspect", os.fsencode(tmp_path / name)], capture_output=True,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert b"model-\xff.pb" in proc.stdout


def test_output_cut_short_by_the_reader_is_not_an_error_message():
    """`tfwizard inspect M | head -1`: the reader is gone; no 'internal error', no traceback."""
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # every write will fail with EPIPE, as after `head` exits
    proc = subprocess.run([sys.executable, "-m", "wizard", "inspect", str(SAMPLES / "metagraph" / "model.meta")],
                          stdout=write_end, stderr=subprocess.PIPE, timeout=60)
    os.close(write_end)
    assert proc.stderr == b"" and proc.returncode == 141
