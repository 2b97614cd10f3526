"""Model files that would hang the conversion or exhaust memory are refused up front, in one line."""

import os
import zipfile

import numpy as np
import pytest

from conftest import COUNTS, assert_clean_error, run_cli
from engine.resources import GIB, MIB, check_space, memory_needed, node_count
from engine.detect import MAX_CONFIG_BYTES, detect
from engine.errors import UserError
from engine.inspect import TensorInfo
from engine.protos import GraphDef, MetaGraphDef, saved_model_class
from engine.verify import make_feeds

REFUSED = []


def _count():
    REFUSED.append(1)
    COUNTS["resource bombs"] = f"{len(REFUSED)} refused up front"


def _saved_model(tmp_path):
    meta = MetaGraphDef()
    meta.meta_info_def.tags.append("serve")
    x = meta.graph_def.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = 1
    meta.graph_def.node.add(name="y", op="Identity", input=["x"]).attr["T"].type = 1
    sig = meta.signature_def["serving_default"]
    sig.inputs["x"].name, sig.outputs["y"].name = "x:0", "y:0"
    message = saved_model_class()()
    message.meta_graphs.add().CopyFrom(meta)
    directory = tmp_path / "sm"
    (directory / "assets").mkdir(parents=True)
    (directory / "saved_model.pb").write_bytes(message.SerializeToString())
    return directory


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "outside"])
def test_savedmodel_asset_that_is_not_a_regular_file_inside_is_refused(kind, tmp_path):
    directory = _saved_model(tmp_path)
    asset = directory / "assets" / "vocab.txt"
    if kind == "fifo":
        os.mkfifo(asset)
    elif kind == "dev-zero":
        asset.symlink_to("/dev/zero")
    else:
        (tmp_path / "secret.txt").write_text("x")
        asset.symlink_to(tmp_path / "secret.txt")
    for command in (["inspect"], ["convert", "--to", "onnx", "-o", tmp_path / "out", "--no-verify"]):
        proc = run_cli(command[0], directory, *command[1:], timeout=60)  # a FIFO read would block forever
        assert_clean_error(proc, "vocab.txt", "asset")
    assert not (tmp_path / "out").exists()
    _count()


def test_regular_asset_and_symlink_inside_the_model_are_fine(tmp_path):
    directory = _saved_model(tmp_path)
    (directory / "assets" / "vocab.txt").write_text("a\n")
    (directory / "assets" / "link.txt").symlink_to(directory / "assets" / "vocab.txt")
    detect(directory)


def _keras_zip(path, config: bytes):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", config)
        z.writestr("model.weights.h5", b"")
    return path


def test_keras_config_that_inflates_past_the_limit_is_refused(tmp_path):
    config = b'{"class_name": "Sequential", "config": {"layers": []}}' + b" " * MAX_CONFIG_BYTES
    path = _keras_zip(tmp_path / "bomb.keras", config)
    assert path.stat().st_size < MAX_CONFIG_BYTES // 100  # small on disk: it is the inflating that hurts
    proc = run_cli("inspect", path)
    assert_clean_error(proc, "config.json is over 64 MiB")
    _count()


def test_keras_config_lying_about_its_size_is_read_only_up_to_the_limit(tmp_path):
    """A central directory that declares a small size does not let more than the limit be inflated."""
    config = b'{"class_name": "Sequential", "config": {"layers": []}}' + b" " * (MAX_CONFIG_BYTES + 10)
    path = _keras_zip(tmp_path / "liar.keras", config)
    data = bytearray(path.read_bytes())
    size = len(config).to_bytes(4, "little")
    assert data.count(size) == 2  # local header and central directory
    data[:] = data.replace(size, (1000).to_bytes(4, "little"))
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="bomb.keras|liar.keras"):
        detect(path)


def test_keras_config_within_the_limit_still_loads(tmp_path):
    config = b'{"class_name": "Sequential", "config": {"layers": []}}' + b" " * (MAX_CONFIG_BYTES // 2)
    assert detect(_keras_zip(tmp_path / "big.keras", config)).parsed["config"]["class_name"] == "Sequential"


def test_memory_estimate_counts_nodes(tmp_path):
    g = GraphDef()
    for k in range(200_000):
        g.node.add(name=f"n{k}", op="NoOp")
    path = tmp_path / "many.pb"
    path.write_bytes(g.SerializeToString())
    assert node_count(detect(path)) == 200_000
    # The review's graph: 34 MB on disk, 1,000,000 nodes, killed at 6 GiB after 167 s.
    assert memory_needed(34 * MIB, 1_000_000) > 6 * GIB
    with pytest.raises(UserError, match="1,000,000 nodes"):
        check_space(34 * MIB, 1, free_disk=1 << 50, free_memory=8 * GIB, out=tmp_path, nodes=1_000_000)
    check_space(34 * MIB, 1, free_disk=1 << 50, free_memory=8 * GIB, out=tmp_path, nodes=1_000)
    _count()


def test_huge_verification_input_is_refused_naming_input():
    with pytest.raises(UserError, match=r"--input x\["):
        make_feeds([TensorInfo("x", "float32", [-1, 100000, 100000])])
    feeds = make_feeds([TensorInfo("x", "float32", [-1, 224, 224, 3])])
    assert feeds["x"].shape == (2, 224, 224, 3) and feeds["x"].dtype == np.float32
    _count()


def test_convert_of_a_model_with_a_huge_input_says_use_input(tmp_path):
    g = GraphDef()
    x = g.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = 1
    for d in (-1, 100000, 100000):
        x.attr["shape"].shape.dim.add(size=d)
    y = g.node.add(name="y", op="Relu", input=["x"])
    y.attr["T"].type = 1
    path = tmp_path / "huge.pb"
    path.write_bytes(g.SerializeToString())
    proc = run_cli("convert", path, "--to", "onnx", "-o", tmp_path / "out", timeout=300)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "--input x[" in last and "internal error" not in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()
