import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_models"
MANIFEST = json.loads((SAMPLES / "manifest.json").read_text())["models"]
# tfwizard's caches that follow XDG (inspect --deep's answers) go to a directory of this run, never
# the user's ~/.cache; the wizard tests that pick a model start that analysis in the background.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="tfwizard-tests-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)


@functools.cache
def scratch_dir() -> Path:
    """An empty working directory for child processes: what lies in the repo root (a left-over
    `*_converted/` from a manual run) must not change what a test sees. Removed at exit."""
    path = Path(tempfile.mkdtemp(prefix="tfwizard-tests-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def run_cli(*args, cwd=None, timeout=120, env=None):
    """Run `python -m wizard ARGS` as a user would (`env`: added to the environment); return the CompletedProcess (text).

    The working directory is an empty scratch directory unless `cwd` is given, never the repo root."""
    return subprocess.run(
        [sys.executable, "-m", "wizard", *map(str, args)],
        capture_output=True, text=True, cwd=cwd or scratch_dir(), timeout=timeout, env={**os.environ, **(env or {})},
    )


def assert_clean_error(proc, *needles):
    """Exit 2, exactly one line on stderr naming the problem, nothing on stdout, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="session")
def samples():
    return SAMPLES


# Sweep tests (bad-input corpus, fuzzing) put their tallies here; they are printed after the run.
COUNTS: dict[str, str] = {}


def pytest_terminal_summary(terminalreporter):
    if COUNTS:
        terminalreporter.section("reliability sweep")
        for name, line in COUNTS.items():
            terminalreporter.write_line(f"{name}: {line}")


def backend_options(target, **kw):
    """ConversionOptions for one target's backend tests (model and output_dir: placeholders unless given)."""
    from engine.options import ConversionOptions

    return ConversionOptions(model=kw.pop("model", "m"), targets=(target,), output_dir=kw.pop("output_dir", "out"), **kw)


def convert_into(backend, prepared, opts, tmp_path):
    """Run `backend`'s conversion into tmp_path/<target>/; return that directory and its log lines."""
    out = tmp_path / backend.name
    out.mkdir(parents=True)
    lines = []
    backend.convert(prepared, opts, out, lines.append)
    return out, lines


def make_prepared_from_frozen(path, inputs, outputs):
    """A Prepared from a frozen .pb whose Placeholders and output nodes already carry the names.

    For backend tests that need graphs prepare() can't make from the samples (unsupported ops,
    synthetic nets); it reuses prepare()'s own graph reading.
    """
    from engine.backends import Prepared
    from engine.prepare import _read_graph_def, import_tensorflow

    graph_def = _read_graph_def(import_tensorflow(), path)
    return Prepared(graph_def=graph_def, graph_path=Path(path), inputs=inputs, outputs=outputs)


def tf_outputs(prepared, feeds):
    """TensorFlow's outputs for the prepared graph: what the engine verifies every target against."""
    from engine.prepare import import_tensorflow, run_reference

    return run_reference(import_tensorflow(), prepared, feeds)
