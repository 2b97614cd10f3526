"""Early, clear failures when the output disk or the memory is too small for the model."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, SAMPLES, assert_clean_error, scratch_dir
from engine.resources import GIB, MIB, available_memory, check_space, disk_needed, model_bytes, memory_needed
from engine.detect import detect
from engine.errors import UserError


def du(path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def test_model_size_counts_every_file_of_the_model():
    assert model_bytes(detect(SAMPLES / "frozen_graph.pb")) == (SAMPLES / "frozen_graph.pb").stat().st_size
    assert model_bytes(detect(SAMPLES / "saved_model_tf2")) == du(SAMPLES / "saved_model_tf2")
    # a graph with variables: the graph plus its checkpoint (.index and .data), not the state file
    folder = SAMPLES / "tf1_checkpoint_v2"
    expected = sum(p.stat().st_size for p in folder.iterdir() if p.name != "checkpoint")
    assert model_bytes(detect(folder / "inference_graph.pb")) == expected


def test_model_size_of_a_checkpoint_whose_name_looks_like_a_glob(tmp_path):
    for f in (SAMPLES / "tf1_checkpoint_v2").iterdir():
        if f.name != "checkpoint":
            shutil.copy(f, tmp_path / f.name.replace("model.ckpt", "model[1].ckpt"))
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model[1].ckpt"\n')
    expected = sum(p.stat().st_size for p in tmp_path.iterdir() if p.name != "checkpoint")
    assert model_bytes(detect(tmp_path / "inference_graph.pb")) == expected


def test_disk_check_refuses_when_the_estimate_does_not_fit(tmp_path):
    size = 300 * MIB
    need = disk_needed(size, 4)
    assert need > 5 * size  # a frozen copy plus one model-sized result per target, with margin
    check_space(size, 4, free_disk=need, free_memory=None, out=tmp_path)  # just fits
    with pytest.raises(UserError, match=r"not enough free disk space.*needs about 2\.\d GB.*free some space") as e:
        check_space(size, 4, free_disk=need - 1, free_memory=None, out=tmp_path / "out")
    assert "\n" not in str(e.value) and str(tmp_path / "out") in str(e.value)


def test_memory_check_refuses_a_model_larger_than_memory(tmp_path):
    with pytest.raises(UserError, match=r"model \(12\.9 GB\) needs about 26\.8 GB of memory.*8\.6 GB is available"):
        check_space(12 * GIB, 1, free_disk=1 << 50, free_memory=8 * GIB, out=tmp_path)
    check_space(12 * GIB, 1, free_disk=1 << 50, free_memory=memory_needed(12 * GIB), out=tmp_path)
    check_space(12 * GIB, 1, free_disk=1 << 50, free_memory=None, out=tmp_path)  # unknown: no check


def test_available_memory_is_read_from_this_machine():
    free = available_memory()
    assert free is not None and 64 * MIB < free < 1 << 50


def test_cli_fails_early_when_the_output_disk_is_short(tmp_path):
    """TFWIZARD_DISK_RESERVE keeps that many bytes free besides the estimate; asking for more than
    the disk has makes the real check (with this disk's real free space) refuse, before TensorFlow."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "wizard", "convert", str(SAMPLES / "frozen_graph.pb"), "--to", "onnx", "-o", str(out),
         "--progress", "json"],
        capture_output=True, text=True, cwd=scratch_dir(), timeout=120, env={**os.environ, "TFWIZARD_DISK_RESERVE": str(1 << 60)},
    )
    assert_clean_error(proc, "not enough free disk space", "free some space")
    assert list(tmp_path.iterdir()) == []


def test_deep_inspect_checks_memory_as_convert_does(tmp_path, monkeypatch):
    """inspect --deep freezes the model as convert does: refused up front, in one line, when it can't fit."""
    import engine.resources

    detection = detect(str(SAMPLES / "image_classifier"))
    monkeypatch.setattr(engine.resources, "available_memory", lambda: 1 << 20)
    with pytest.raises(UserError, match="of memory to analyse") as e:
        engine.resources.check_analysis_space(detection, tmp_path)
    assert "\n" not in str(e.value)
    monkeypatch.setattr(engine.resources, "available_memory", lambda: 64 * GIB)
    engine.resources.check_analysis_space(detection, tmp_path)
