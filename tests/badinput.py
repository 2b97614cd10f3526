#!/usr/bin/env python
"""A corpus of bad input for tfwizard, written by this script, and a runner that feeds it to the CLI.

    python tests/badinput.py build DIR          # write the corpus into DIR and list its cases
    python tests/badinput.py run DIR RESULTS    # run every case through the CLI; results as JSON

The corpus is derived from sample_models/ (truncated and bit-flipped copies, broken layouts)
plus small made-up files, so nothing large is committed. Each Case says what the user did and
what the one-line error must mention. `run` calls the CLI's main() for `inspect`, `convert`
and `convert --dryrun`: the cases found without TensorFlow in one process, capturing file
descriptors 1 and 2 (Python warnings and native logging count, as a user would see them) and
recording whether TensorFlow had been imported; the cases that need TensorFlow as separate
`python -m wizard` processes, as users run them.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_models"
SEED = 6


@dataclass
class Case:
    id: str
    model: str  # the MODEL argument
    needles: tuple[str, ...] = ()  # what the one-line message must mention (besides the fix after "; ")
    args: tuple[str, ...] = ()  # extra `convert` arguments
    out: str | None = None  # -o; default: a fresh OUTROOT/<id>/out
    inspect: bool = True  # run `inspect MODEL` too (False: the problem is in convert options)
    inspect_ok: bool = False  # inspect rightly succeeds (the damage is in weights it never reads)
    dryrun: bool = True  # `convert --dryrun` must refuse too
    tf: bool = False  # convert can only find the problem with TensorFlow (runs last)
    what: str = ""

    def out_dir(self, root: Path) -> Path:
        return Path(self.out) if self.out else root / "out" / self.id / "out"


# --- building ------------------------------------------------------------------------------------


def main_file(entry: dict) -> str:
    """The file of a sample that holds its structure (a SavedModel's saved_model.pb, a TF.js model.json)."""
    path = SAMPLES / entry["path"]
    if not path.is_dir():
        return entry["path"]
    return entry["path"] + ("/model.json" if (path / "model.json").is_file() else "/saved_model.pb")


def copy_sample(entry: dict, dest: Path) -> Path:
    """Copy a sample with everything beside it that it needs; return the path to pass as MODEL."""
    src = SAMPLES / entry["path"]
    if src.is_dir():
        shutil.copytree(src, dest / src.name)
        return dest / src.name
    if "/" in entry["path"]:  # a graph with its checkpoint in one folder
        shutil.copytree(src.parent, dest / src.parent.name)
        return dest / src.parent.name / src.name
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dest / src.name)
    return dest / src.name


def flip_bit(path: Path, offset: int, bit: int = 2) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def truncate(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def make_keras_zip(path: Path, config: bytes | None, weights: bool = True) -> None:
    src = zipfile.ZipFile(SAMPLES / "keras_functional.keras")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", src.read("metadata.json"))
        if config is not None:
            z.writestr("config.json", config)
        if weights:
            z.writestr("model.weights.h5", src.read("model.weights.h5"))


def build(root: Path) -> list[Case]:
    """Write the corpus under `root` (models/ and out/) and return its cases."""
    import h5py

    manifest = json.loads((SAMPLES / "manifest.json").read_text())["models"]
    models = root / "models"
    models.mkdir(parents=True)
    rng = random.Random(SEED)
    cases: list[Case] = []

    def add(case: Case) -> None:
        cases.append(case)
        (root / "out" / case.id).mkdir(parents=True)

    suffixes = [".pb", ".pbtxt", ".meta", ".index", ".h5", ".keras"]
    for suffix in suffixes:
        d = models / f"empty{suffix}"
        d.mkdir()
        (d / f"model{suffix}").write_bytes(b"")
        add(Case(f"empty{suffix}", str(d / f"model{suffix}"), ("model" + suffix, "empty"), what="empty file"))
        d = models / f"random{suffix}"
        d.mkdir()
        (d / f"model{suffix}").write_bytes(rng.randbytes(4096))
        add(Case(f"random{suffix}", str(d / f"model{suffix}"), ("model" + suffix,), what="random bytes"))
    for name, magic in (("hdf5-magic", b"\x89HDF\r\n\x1a\n"), ("zip-magic", b"PK\x03\x04"), ("tflite-magic", b"\0\0\0\0TFL3"),
                        ("json-brace", b"{")):
        d = models / f"random-{name}"
        d.mkdir()
        (d / "model.bin").write_bytes(magic + rng.randbytes(4096))
        add(Case(f"random-after-{name}", str(d / "model.bin"), ("model.bin",), what=f"{name} then random bytes"))
    for name, data in (("empty", b""), ("random", rng.randbytes(4096))):
        d = models / f"saved-model-{name}"
        d.mkdir()
        (d / "saved_model.pb").write_bytes(data)
        add(Case(f"saved_model.pb-{name}", str(d), ("saved_model.pb",), what=f"SavedModel dir with {name} saved_model.pb"))

    # Truncated and bit-flipped copies of every sample model form.
    for entry in manifest:
        if entry["format"] == "keras_weights_only":
            continue
        for damage in ("truncated", "bitflip"):
            cid = f"{damage}-{entry['path'].replace('/', '-')}"
            model = copy_sample(entry, models / cid)
            target = model / Path(main_file(entry)).name if model.is_dir() else model
            if damage == "truncated":
                truncate(target)
            else:  # the first byte: a field key, magic number or first token. A flip in weights goes
                flip_bit(target, 0)  # unnoticed where there is no checksum; the fuzz tests flip everywhere
            add(Case(cid, str(model), (target.name,), what=f"{damage} {main_file(entry)}"))

    by_path = {e["path"]: e for e in manifest}
    # Layouts that are missing a part.
    sm = copy_sample(by_path["saved_model_tf2"], models / "no-variables")
    shutil.rmtree(sm / "variables")
    add(Case("saved-model-without-variables", str(sm), ("variables", "copy the whole SavedModel")))
    meta = copy_sample(by_path["metagraph/model.meta"], models / "meta-without-index")
    (meta.parent / "model.index").unlink()
    add(Case("meta-without-index", str(meta), ("model.meta", "--checkpoint")))
    graph = copy_sample(by_path["tf1_checkpoint_v2/inference_graph.pb"], models / "checkpoint-elsewhere")
    for p in graph.parent.glob("model.ckpt*"):
        p.unlink()  # only the `checkpoint` state file, pointing at another machine, is left
    add(Case("checkpoint-file-points-elsewhere", str(graph), ("inference_graph.pb", "--checkpoint")))
    d = models / "hdf5-not-keras"
    d.mkdir()
    with h5py.File(d / "data.h5", "w") as f:
        f.create_dataset("measurements", data=list(range(10)))
        f.attrs["instrument"] = "thermometer"
    add(Case("hdf5-not-keras", str(d / "data.h5"), ("data.h5", "not a Keras model")))
    for name in ("keras_weights_only.weights.h5", "keras2_weights_only.h5"):
        model = copy_sample(by_path[name], models / f"weights-only-{name}")
        add(Case(f"weights-only-{name}", str(model), (name, "weights-only", "model.save")))

    # .keras archives with a broken config.
    d = models / "keras-broken"
    d.mkdir()
    for cid, config, weights, needles in (
        ("keras-config-not-json", b'{"class_name": "Functional", "config": {', True, ("config.json",)),
        ("keras-config-a-list", b"[1, 2, 3]", True, ("config.json",)),
        ("keras-config-layers-not-a-list", b'{"class_name": "Functional", "config": {"layers": 5}}', True, ("config",)),
        ("keras-config-layer-not-an-object", b'{"class_name": "Sequential", "config": {"layers": ["Dense"]}}', True,
         ("config",)),
        ("keras-config-no-class", b'{"config": {"layers": []}}', True, ("config",)),
        ("keras-no-config", None, True, ("config.json",)),
        ("keras-no-weights", zipfile.ZipFile(SAMPLES / "keras_functional.keras").read("config.json"), False,
         ("model.weights.h5",)),
    ):
        make_keras_zip(d / f"{cid}.keras", config, weights)
        add(Case(cid, str(d / f"{cid}.keras"), (f"{cid}.keras",) + needles))

    # Paths that are not what they seem.
    d = models / "links"
    d.mkdir()
    os.symlink(d / "loop.pb", d / "loop.pb")
    add(Case("symlink-loop-file", str(d / "loop.pb"), ("loop.pb",)))
    os.symlink(d / "dir-b", d / "dir-a")
    os.symlink(d / "dir-a", d / "dir-b")
    add(Case("symlink-loop-dir", str(d / "dir-a"), ("dir-a",)))
    os.symlink(d / "gone.pb", d / "dangling.pb")
    add(Case("dangling-symlink", str(d / "dangling.pb"), ("dangling.pb", "symlink")))
    os.mkfifo(d / "fifo.pb")
    add(Case("fifo", str(d / "fifo.pb"), ("fifo.pb", "not a regular file")))
    d = models / "unrelated"
    d.mkdir()
    (d / "notes.txt").write_text("hello")
    (d / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.randbytes(64))
    (d / "sub").mkdir()
    add(Case("directory-of-unrelated-files", str(d), ("nothing recognisable",)))
    d = models / "two-graphs"
    d.mkdir()
    shutil.copy(SAMPLES / "frozen_graph.pb", d / "a.pb")
    shutil.copy(SAMPLES / "frozen_graph.pb", d / "b.pb")
    add(Case("directory-with-two-models", str(d), ("a.pb", "b.pb", "pass the one")))
    d = models / "spaces and ünïcödé" / "mödel dir"
    d.mkdir(parents=True)
    (d / "my mödel ✓.pb").write_bytes(rng.randbytes(2048))
    add(Case("path-with-spaces-and-non-ascii", str(d / "my mödel ✓.pb"), ("my mödel ✓.pb",)))
    name = os.fsdecode(b"model-\xff\xfe.pb")  # not UTF-8: a name from another system's encoding
    (models / "non-utf8").mkdir()
    (models / "non-utf8" / name).write_bytes(rng.randbytes(2048))
    add(Case("path-not-utf8", str(models / "non-utf8" / name), ("model-",)))
    (models / "missing").mkdir()
    add(Case("missing-path", str(models / "missing" / "model.pb"), ("no such file", "check the path")))
    d = models / "out-of-scope"
    d.mkdir()
    (d / "model.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    add(Case("tflite-model", str(d / "model.tflite"), ("TFLite", "out of scope")))
    (d / "model.json").write_text('{"format": "graph-model", "modelTopology": {}, "weightsManifest": []}')
    add(Case("tfjs-model", str(d / "model.json"), ("TensorFlow.js", "out of scope")))

    # Good models, bad convert options.
    frozen, classifier = str(SAMPLES / "frozen_graph.pb"), str(SAMPLES / "image_classifier")
    option_cases = [
        ("unknown-input-name", frozen, ("--input", "nope[1,8]"), ("'nope'", "input")),
        ("unknown-output-saved-model", str(SAMPLES / "saved_model_tf2"), ("--output", "nope"), ("'nope'", "y")),
        ("unknown-output-frozen-graph", frozen, ("--output", "nope"), ("'nope'", "output")),
        ("unknown-output-metagraph", str(SAMPLES / "metagraph" / "model.meta"), ("--output", "nope"), ("'nope'", "probs")),
        ("unknown-output-keras", str(SAMPLES / "keras_functional.keras"), ("--output", "nope"), ("'nope'", "probs")),
        ("shape-negative", frozen, ("--input", "input[-2,8]"), ("'-2'",)),
        ("shape-zero", frozen, ("--input", "input[0,8]"), ("'0'",)),
        ("shape-text", frozen, ("--input", "input[one,8]"), ("'one'",)),
        ("shape-unclosed", frozen, ("--input", "input[1,8"), ("NAME[d1,d2,...]",)),
        ("shape-wrong-rank", frozen, ("--input", "input[1,8,8]"), ("rank",)),
        ("batch-zero", frozen, ("--batch", "0"), ("--batch",)),
        ("batch-text", frozen, ("--batch", "two"), ("--batch",)),
        ("mean-wrong-length", classifier, ("--mean-values", "[127.5,127.5]"), ("channels", "--mean-values")),
        ("scale-wrong-length", classifier, ("--scale-values", "[1,2,3,4]"), ("channels", "--scale-values")),
        ("mean-scale-length-differ", classifier, ("--mean-values", "[1,2,3]", "--scale-values", "[1,2]"),
         ("different lengths",)),
        ("mean-on-features", frozen, ("--mean-values", "[1,2,3]"), ("channels", "input")),
        ("mean-text", classifier, ("--mean-values", "[a,b,c]"), ("--mean-values",)),
        ("scale-zero", classifier, ("--scale", "0"), ("divide by zero",)),
        ("unknown-target", frozen, ("--to", "coreml"), ("coreml",)),
        ("unknown-quantization", frozen, ("--quantize", "onnx:int3"), ("onnx:int3",)),
        ("tag-on-a-graph", frozen, ("--tag", "serve"), ("SavedModels only",)),
        ("unknown-tag", str(SAMPLES / "saved_model_tf1"), ("--tag", "train"), ("'train'", "--tag")),
        ("unknown-signature", str(SAMPLES / "saved_model_tf2"), ("--signature", "nope"), ("'nope'", "--signature")),
        ("layers-format-for-a-graph", frozen, ("--to", "tfjs", "--tfjs-format", "layers"), ("Keras",)),
    ]
    for cid, model, args, needles in option_cases:
        add(Case(cid, model, needles, args=args, inspect=False))

    # Output directories that can't be used.
    out = root / "out"
    add(Case("output-is-a-file", frozen, ("is a file",), inspect=False))
    (out / "output-is-a-file" / "out").write_text("precious\n")
    add(Case("output-not-ours-even-with-force", frozen, ("did not write", "--force does not"), args=("--force",), inspect=False))
    (out / "output-not-ours-even-with-force" / "out").mkdir()
    (out / "output-not-ours-even-with-force" / "out" / "old.onnx").write_text("precious\n")
    add(Case("output-parent-missing", frozen, ("does not exist",), out=str(out / "output-parent-missing" / "a" / "out"),
             inspect=False))
    add(Case("output-unwritable", frozen, ("cannot write",), out=str(out / "output-unwritable" / "locked" / "out"),
             inspect=False, dryrun=False))
    (out / "output-unwritable" / "locked").mkdir()  # made unwritable while the cases run: see unwritable()

    # Damage only TensorFlow finds: weights that inspect never reads, a checkpoint of another graph.
    for cid, entry, weights, how in (
        ("truncated-checkpoint-data", "tf1_checkpoint_v2/inference_graph.pb", "model.ckpt.data-00000-of-00001", "truncate"),
        ("bitflip-checkpoint-data", "tf1_checkpoint_v2/inference_graph.pb", "model.ckpt.data-00000-of-00001", "flip"),
        ("truncated-metagraph-data", "metagraph/model.meta", "model.data-00000-of-00001", "truncate"),
        ("truncated-saved-model-variables", "saved_model_tf2", "variables/variables.data-00000-of-00001", "truncate"),
        ("bitflip-keras-weights", "keras_sequential.keras", None, "flip"),
    ):
        model = copy_sample(by_path[entry], models / cid)
        folder = model if model.is_dir() else model.parent
        if weights is None:  # a flip inside model.weights.h5 in the zip: its CRC-32 no longer matches
            data = model.read_bytes()
            flip_bit(model, data.index(b"model.weights.h5") + 200)
        elif how == "truncate":
            truncate(folder / weights)
        else:
            flip_bit(folder / weights, (folder / weights).stat().st_size // 2)
        add(Case(cid, str(model), (), args=("--progress", "json"), inspect_ok=True, dryrun=False, tf=True))
    wrong = copy_sample(by_path["tf1_checkpoint_v2/inference_graph.pb"], models / "wrong-checkpoint")
    for p in list(wrong.parent.glob("model.ckpt*")) + [wrong.parent / "checkpoint"]:
        p.unlink()
    for p in (SAMPLES / "metagraph").glob("model.*"):
        if p.suffix != ".meta":
            shutil.copy(p, wrong.parent / p.name)
    add(Case("checkpoint-of-another-graph", str(wrong), ("--checkpoint",), args=("--progress", "json"),
             inspect_ok=True, dryrun=False, tf=True))
    return cases


@contextmanager
def unwritable(path: Path):
    """Make a directory unwritable even for root (chattr +i), restoring it afterwards."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


# --- running -------------------------------------------------------------------------------------


@contextmanager
def captured_fds():
    """Capture file descriptors 1 and 2 (Python prints, C++ logs, warnings) into a dict."""
    result: dict[str, str] = {}
    files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
    sys.stdout.flush(), sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    os.dup2(files[0].fileno(), 1), os.dup2(files[1].fileno(), 2)
    try:
        yield result
    finally:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        for key, f in zip(("stdout", "stderr"), files):
            f.seek(0)
            result[key] = f.read().decode("utf-8", errors="replace")
            f.close()


def runs(case: Case, root: Path) -> list[tuple[str, list[str]]]:
    out = str(case.out_dir(root))
    convert = ["convert", case.model, "--to", "onnx", "-o", out, *case.args]
    if "--to" in case.args:  # the case chooses its own targets
        convert = ["convert", case.model, "-o", out, *case.args]
    result = [("inspect", ["inspect", case.model])] if case.inspect else []
    result.append(("convert", convert))
    if case.dryrun:
        result.append(("dryrun", convert + ["--dryrun"]))
    return result


def run_all(cases: list[Case], root: Path) -> list[dict]:
    """Cases found without TensorFlow: main() here, one after the other, recording whether this
    process has imported TensorFlow by then. The others: `python -m wizard` processes, as users
    run them (each starts a TensorFlow worker), three at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.cli import main

    results = []
    for case in (c for c in cases if not c.tf):
        for command, argv in runs(case, root):
            with captured_fds() as io:
                try:
                    code = main(argv)
                except SystemExit as e:
                    code = e.code
                except BaseException as e:  # noqa: BLE001 - record it; the test fails it
                    import traceback

                    code = f"raised {type(e).__name__}"
                    traceback.print_exc()
            results.append({"id": case.id, "command": command, "argv": argv, "exit_code": code, **io,
                            "tensorflow_imported": "tensorflow" in sys.modules})

    def run_cli(item):
        case, command, argv = item
        proc = subprocess.run([sys.executable, "-m", "wizard", *argv], capture_output=True, text=True,
                              cwd=REPO, timeout=300, errors="replace")
        return {"id": case.id, "command": command, "argv": argv, "exit_code": proc.returncode,
                "stdout": proc.stdout, "stderr": proc.stderr, "tensorflow_imported": None}

    with ThreadPoolExecutor(3) as pool:
        results += pool.map(run_cli, [(c, cmd, argv) for c in cases if c.tf for cmd, argv in runs(c, root)])
    return results


def cli(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "build":
        cases = build(Path(argv[1]))
        save_cases(cases, Path(argv[1]))
        for c in cases:
            print(f"{c.id:<40} {c.model} {' '.join(c.args)}")
        return 0
    if len(argv) == 3 and argv[0] == "run":
        root = Path(argv[1])
        cases = [Case(**{**c, "needles": tuple(c["needles"]), "args": tuple(c["args"])})
                 for c in json.loads((root / "cases.json").read_text())]
        Path(argv[2]).write_text(json.dumps(run_all(cases, root)))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


def save_cases(cases: list[Case], root: Path) -> None:
    (root / "cases.json").write_text(json.dumps([asdict(c) for c in cases]))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(cli(sys.argv[1:]))
