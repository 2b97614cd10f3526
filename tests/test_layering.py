"""The architecture rules that keep start-up fast and the engine headless, checked in a fresh process."""

import json
import subprocess
import sys

from conftest import REPO, SAMPLES, scratch_dir

HEAVY = {"tensorflow", "keras", "tf_keras", "tensorflowjs", "tf2onnx", "jax", "openvino", "onnxruntime"}
UI = {"textual", "questionary", "prompt_toolkit", "rich"}


def imported_roots(code: str, cwd=None) -> set[str]:
    probe = code + "\nimport sys, json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=cwd or scratch_dir(),
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
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


def test_wizard_app_reads_a_model_without_tensorflow():
    roots = imported_roots(
        "import wizard.app\nfrom wizard import steps\nfrom engine.plan import upstream_commands\n"
        f"a = steps.Answers(); a.load({str(SAMPLES / 'saved_model_tf2')!r}); steps.preflight(a.info)\n"
        "upstream_commands(a.options(), a.info)\n"
    )
    assert not roots & HEAVY, roots & HEAVY


def test_wizard_app_leaves_netron_until_its_button_is_pressed():
    assert "netron" not in imported_roots("import wizard.app\n")


PLAIN_DRY_RUN = (  # a whole dry run (inspect, outline, preflight, review checks) through the prompts
    "from prompt_toolkit.application import create_app_session\n"
    "from prompt_toolkit.input import create_pipe_input\n"
    "from prompt_toolkit.output import DummyOutput\n"
    "from wizard.plain import run_plain\n"
    "with create_pipe_input() as inp, create_app_session(input=inp, output=DummyOutput()):\n"
    "    inp.send_text('\\r' * 12)\n"
    "    inp.close()\n"  # the input ends: a prompt the keys did not foresee fails instead of waiting forever
    f"    assert run_plain({str(SAMPLES / 'image_classifier')!r}, dryrun=True) == 0\n"
    "import wizard.demo, wizard.view\n"
)


def test_plain_flow_walks_every_step_without_tensorflow():
    roots = imported_roots(PLAIN_DRY_RUN)
    assert not roots & HEAVY, roots & HEAVY


def test_plain_flow_ends_when_its_keys_run_out(tmp_path):
    # An existing default output directory makes Review ask one more question than the keys
    # answer; once run in the repo root this waited for a key forever. It must end, and fail.
    (tmp_path / "image_classifier_converted").mkdir()
    (tmp_path / "image_classifier_converted" / "keep").write_text("not ours")
    probe = PLAIN_DRY_RUN + "import sys, json; print(json.dumps([]))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert (tmp_path / "image_classifier_converted" / "keep").read_text() == "not ours"


def test_wizard_start_imports_no_engine_module_the_first_screen_does_not_need():
    # Start-up time is a goal: reading the model (engine.detect/inspect) waits until the first screen
    # is drawn, and the options and backends until a later step needs them.
    probe = "import wizard.cli, wizard.app, sys; print(' '.join(sorted(m for m in sys.modules if m.startswith('engine'))))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=scratch_dir(), check=True)
    assert out.stdout.split() == ["engine", "engine.errors"]
