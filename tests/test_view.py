"""tfwizard view: Netron serves the model on 127.0.0.1, at the URL we print, until stopped."""

import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from conftest import REPO, SAMPLES, scratch_dir
from engine.errors import UserError
from wizard.view import model_file, serve, stop


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_serves_a_saved_model_on_loopback_until_stopped():
    port = free_port()
    url = serve(SAMPLES / "image_classifier", port=port)
    try:
        assert url == f"http://127.0.0.1:{port}"
        page = fetch(url).decode()
        assert "<html" in page and '<meta name="file" content="/data/saved_model.pb">' in page
        assert fetch(url + "/data/saved_model.pb") == (SAMPLES / "image_classifier" / "saved_model.pb").read_bytes()
    finally:
        stop(url)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        fetch(url)


def test_a_converted_onnx_model_and_the_files_beside_it(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    (tmp_path / "onnx").mkdir()
    onnx.save(helper.make_model(graph), tmp_path / "onnx" / "model.onnx")
    url = serve(tmp_path / "onnx")  # a free port of its own choosing
    try:
        assert url.startswith("http://127.0.0.1:")
        assert fetch(url + "/data/model.onnx") == (tmp_path / "onnx" / "model.onnx").read_bytes()
    finally:
        stop(url)


def test_which_file_a_path_means(tmp_path):
    assert model_file(SAMPLES / "saved_model_tf2") == SAMPLES / "saved_model_tf2" / "saved_model.pb"
    assert model_file(SAMPLES / "frozen_graph.pb") == SAMPLES / "frozen_graph.pb"
    openvino = tmp_path / "out" / "openvino"
    openvino.mkdir(parents=True)
    (openvino / "model.xml").write_text("<net/>")
    (openvino / "model.bin").write_bytes(b"\0")
    assert model_file(openvino) == openvino / "model.xml"  # Netron fetches model.bin beside it
    (tmp_path / "out" / "tflite").mkdir()
    (tmp_path / "out" / "tflite" / "model.tflite").write_bytes(b"\0")
    (tmp_path / "out" / "report.json").write_text("{}")
    with pytest.raises(UserError, match=r"several converted models \(openvino, tflite\); pass one of them"):
        model_file(tmp_path / "out")
    with pytest.raises(UserError, match="no such file or directory"):
        model_file(tmp_path / "missing")


def test_cli_prints_the_url_and_ctrl_c_stops_it():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "wizard", "view", str(SAMPLES / "image_classifier.keras"),
                             "--port", str(port)], cwd=scratch_dir(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line and "image_classifier.keras" in line
        assert fetch(f"http://127.0.0.1:{port}/data/image_classifier.keras")[:2] == b"PK"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_cli_bad_path_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "wizard", "view", "no/such/model.pb"], cwd=scratch_dir(),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == ["tfwizard: error: no/such/model.pb: no such file or directory; check the path"]


def test_pinned_netron_page_is_not_too_old_to_open():
    # Netron's page loops on "Please update to the newest version" 180 days after its build date.
    import datetime
    import re
    from pathlib import Path

    import netron

    page = (Path(netron.__file__).parent / "index.html").read_text()
    built = datetime.datetime.fromisoformat(re.search(r'<meta name="date" content="([^"]+)">', page).group(1))
    age = (datetime.datetime.now() - built).days
    assert age < 170, (f"netron {netron.__version__} was built {built:%Y-%m-%d}; its page stops working at "
                       "180 days: bump netron in constraints.txt")
