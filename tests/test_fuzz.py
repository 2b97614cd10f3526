"""Fuzzing detect() + inspect() (what `tfwizard inspect` runs) with mutated sample models.

Property: for any bytes, detect + inspect either describe a model (and its JSON and human
report render) or raise UserError with one line. Anything else escaping is a bug in the engine.

Mutations of every sample form's main file (GraphDef, text GraphDef, MetaGraph, saved_model.pb,
HDF5, .keras zip): bit flips, truncation, byte insertions, overwrites and splices from another
sample, in the sample's own folder so checkpoints and variables/ are still beside it. Keras
configs are also fuzzed as JSON (subtrees replaced by arbitrary JSON) inside valid archives, so
the parsing gets past the zip CRC and into the config.

CI runs a fixed (derandomized) set of a few thousand cases. For a longer, random run:
    TFWIZARD_FUZZ_SCALE=50 .venv/bin/python -m pytest tests/test_fuzz.py
(failures are kept in .hypothesis/ and replayed first on the next run).
"""

import json
import os
import shutil
import zipfile
from collections import Counter

import h5py
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import COUNTS, MANIFEST, SAMPLES
from engine.report import format_info
from engine.detect import detect
from engine.errors import UserError
from engine.inspect import inspect

SCALE = int(os.environ.get("TFWIZARD_FUZZ_SCALE", "1"))
settings.register_profile(
    "tfwizard", deadline=None, derandomize=SCALE == 1, database=None if SCALE == 1 else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
BYTES_EXAMPLES, CONFIG_EXAMPLES = 2400 * SCALE, 400 * SCALE
TALLY = Counter()


def main_file(entry) -> str:
    path = SAMPLES / entry["path"]
    if not path.is_dir():
        return entry["path"]
    return entry["path"] + ("/model.json" if (path / "model.json").is_file() else "/saved_model.pb")


FORMS = sorted({main_file(e) for e in MANIFEST})
SEEDS = {f: (SAMPLES / f).read_bytes() for f in FORMS}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A copy of sample_models/ whose files the examples overwrite (and put back)."""
    root = tmp_path_factory.mktemp("fuzz") / "samples"
    shutil.copytree(SAMPLES, root)
    return root


def model_arg(root, form: str):
    """What the user passes: the SavedModel directory for saved_model.pb, else the file."""
    return root / form.removesuffix("/saved_model.pb") if form.endswith("/saved_model.pb") else root / form


def check(path) -> None:
    """The property. Counts what happened, for the summary."""
    TALLY["cases"] += 1
    try:
        info = inspect(detect(path))
        json.dumps(info.to_json())
        format_info(info)
    except UserError as e:
        assert "\n" not in str(e), str(e)
        TALLY["refused"] += 1
        return
    except BaseException:
        TALLY["uncaught"] += 1  # counted, then it fails the test (hypothesis shrinks and reports it)
        raise
    TALLY["described"] += 1


@st.composite
def mutated(draw):
    form = draw(st.sampled_from(FORMS))
    data = bytearray(SEEDS[form])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite", "splice"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "flip" and data:
            i = min(pos, len(data) - 1)
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[pos:pos + len(chunk)] = chunk
        else:  # a slice of another sample: real structure in the wrong place
            other = SEEDS[draw(st.sampled_from(FORMS))]
            start = draw(st.integers(0, len(other)))
            data[pos:pos] = other[start:start + draw(st.integers(1, 512))]
    return form, bytes(data)


@settings(settings.get_profile("tfwizard"), max_examples=BYTES_EXAMPLES)
@given(case=mutated())
def test_mutated_bytes_never_crash_detect_or_inspect(workdir, case):
    form, data = case
    target = workdir / form
    target.write_bytes(data)
    try:
        check(model_arg(workdir, form))
    finally:
        target.write_bytes(SEEDS[form])
    COUNTS["fuzz"] = summary()


# --- Keras configs as JSON -----------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2**40) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
KERAS_V3 = json.loads(zipfile.ZipFile(SAMPLES / "keras_functional.keras").read("config.json"))
with h5py.File(SAMPLES / "keras2_functional.h5", "r") as _f:
    KERAS_H5 = json.loads(_f.attrs["model_config"])


def paths(doc, prefix=()):
    """Every path to a value inside a JSON document."""
    yield prefix
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        yield from paths(value, prefix + (key,))


def replaced(doc, path, value):
    if not path:
        return value
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[path[0]] = replaced(doc[path[0]], path[1:], value)
    return copy


@st.composite
def mutated_config(draw, base):
    doc = base
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(list(paths(doc))))
        doc = replaced(doc, where, draw(JSON))
    return doc


@settings(settings.get_profile("tfwizard"), max_examples=CONFIG_EXAMPLES)
@given(config=mutated_config(KERAS_V3))
def test_mutated_keras_v3_config_never_crashes(workdir, config):
    path = workdir / "fuzzed.keras"
    with zipfile.ZipFile(SAMPLES / "keras_functional.keras") as src, zipfile.ZipFile(path, "w") as z:
        for name in src.namelist():
            z.writestr(name, json.dumps(config) if name == "config.json" else src.read(name))
    check(path)
    COUNTS["fuzz"] = summary()


@settings(settings.get_profile("tfwizard"), max_examples=CONFIG_EXAMPLES)
@given(config=mutated_config(KERAS_H5))
def test_mutated_keras_h5_config_never_crashes(workdir, config):
    path = workdir / "fuzzed.h5"
    shutil.copy(SAMPLES / "keras2_functional.h5", path)
    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = json.dumps(config)
    check(path)
    COUNTS["fuzz"] = summary()


def summary() -> str:
    return (f"{TALLY['cases']} mutated inputs through detect+inspect: {TALLY['described']} described, "
            f"{TALLY['refused']} refused with one-line UserError, {TALLY['uncaught']} uncaught exceptions")
