"""The architecture rules that keep start-up fast and the engine headless, checked in a fresh process."""

import json
import subprocess
import sys

from conftest import REPO, SAMPLES

HEAVY = {"tensorflow", "keras", "tf_keras", "tensorflowjs", "tf2onnx", "jax", "openvino", "onnxruntime"}
UI = {"textual", "questionary", "prompt_toolkit", "rich"}


def imported_roots(code: str) -> set[str]:
    probe = code + "\nimport sys, json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_inspect_runs_without_tensorflow_or_ui():
    roots = imported_roots(
        "from wizard.cli import main\n"
        f"main(['inspect', {str(SAMPLES / 'saved_model_tf2')!r}, '--json'])\n"
        f"main(['inspect', {str(SAMPLES / 'keras_functional.keras')!r}])\n"
        f"main(['inspect', {str(SAMPLES / 'metagraph' / 'model.meta')!r}])\n"
    )
    assert not roots & HEAVY, roots & HEAVY
    assert not roots & UI, roots & UI


def test_convert_process_itself_never_imports_tensorflow(tmp_path):
    """--dryrun plans without TensorFlow; a real convert imports it only in its worker process."""
    model = SAMPLES / "frozen_graph.pb"
    roots = imported_roots(
        "from engine.cli import main\n"
        f"assert main(['convert', {str(model)!r}, '--to', 'onnx,tfjs,openvino,tflite', '-o', {str(tmp_path / 'a')!r},"
        " '--dryrun']) == 0\n"
        f"assert main(['convert', {str(model)!r}, '--to', 'onnx', '-o', {str(tmp_path / 'b')!r}, '--no-verify',"
        " '--progress', 'json']) == 0\n"
    )
    assert not roots & HEAVY, roots & HEAVY
    assert (tmp_path / "b" / "onnx" / "model.onnx").is_file() and not (tmp_path / "a").exists()


def test_engine_never_imports_ui():
    modules = sorted(p.stem for p in (REPO / "engine").glob("*.py") if p.stem != "__init__")
    roots = imported_roots("".join(f"import engine.{m}\n" for m in modules))
    assert not roots & UI, roots & UI
