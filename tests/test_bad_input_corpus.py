"""The bad-input corpus (tests/badinput.py) through the real CLI: every case is refused cleanly.

For each case `inspect`, `convert` and `convert --dryrun` exit 2 with one line on stderr that
names the problem (and, after "; ", the fix), print no traceback, create no output and change
nothing that was there before. The cases found without TensorFlow run in one child process that
must not import it; those that need TensorFlow (damaged weights, a checkpoint of another graph)
run as separate CLI processes whose TensorFlow worker must have started. The whole corpus lives
under a path with a space and non-ASCII characters.
"""

import hashlib
import json
import os
import subprocess
import sys

import pytest

import badinput
from conftest import COUNTS, REPO, SAMPLES


def tree_digest(root) -> dict[str, str]:
    """path → content hash / 'dir' / symlink target, for everything under root (links not followed)."""
    digest = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                digest[rel] = "-> " + os.readlink(p)
            elif os.path.isdir(p):
                digest[rel] = "dir"
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    digest[rel] = hashlib.sha256(f.read()).hexdigest()
            else:
                digest[rel] = "special"
    return digest


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    base = tmp_path_factory.mktemp("corpus")
    root = base / "bad input ü"
    cases = badinput.build(root)
    badinput.save_cases(cases, root)
    before = tree_digest(root), tree_digest(SAMPLES)
    tmpdir = base / "tmp"  # the child's TMPDIR: must be empty again at the end
    tmpdir.mkdir()
    with badinput.unwritable(root / "out" / "output-unwritable" / "locked"):
        proc = subprocess.run(
            [sys.executable, str(REPO / "tests" / "badinput.py"), "run", str(root), str(base / "results.json")],
            capture_output=True, text=True, timeout=600, cwd=base, env={**os.environ, "TMPDIR": str(tmpdir)},
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((base / "results.json").read_text())
    after = tree_digest(root), tree_digest(SAMPLES)
    return {"cases": {c.id: c for c in cases}, "results": results, "before": before, "after": after,
            "tmpdir": tmpdir}


def problems_with(run: dict, case: badinput.Case) -> list[str]:
    """Why this run breaks the contract ([] when it doesn't)."""
    stderr, stdout = run["stderr"], run["stdout"]
    problems = []
    if "Traceback" in stderr or "Traceback" in stdout:
        problems.append("traceback")
    if run["command"] == "inspect" and case.inspect_ok:
        if run["exit_code"] != 0 or stderr:
            problems.append(f"inspect should succeed (the damage is in weights), got exit {run['exit_code']}")
        return problems
    lines = stderr.strip().splitlines()
    if run["exit_code"] != 2:
        problems.append(f"exit {run['exit_code']}, not 2")
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr, not 1")
    line = lines[-1] if lines else ""
    if not line.startswith("tfwizard: error: ") or "; " not in line:
        problems.append("not 'tfwizard: error: <problem>; <fix>'")
    problems += [f"message lacks {n!r}" for n in case.needles if n not in line]
    if case.tf:  # with --progress json: only progress events on stdout, and never "done"
        events = [json.loads(x)["event"] for x in stdout.splitlines()]
        if "done" in events:
            problems.append("reported done")
    elif stdout:
        problems.append("printed on stdout")
    if not case.tf and run["tensorflow_imported"]:
        problems.append("imported TensorFlow for a problem found without it")
    return [f"{p}: {line or stderr[-300:]!r}" for p in problems]


def test_every_case_is_refused_with_one_clean_line(sweep):
    cases, results = sweep["cases"], sweep["results"]
    failures = [f"{r['id']} [{r['command']}] {p}" for r in results for p in problems_with(r, cases[r["id"]])]
    tracebacks = sum("Traceback" in r["stderr"] + r["stdout"] for r in results)
    refused = sum(r["exit_code"] == 2 for r in results)
    COUNTS["bad-input corpus"] = (f"{len(cases)} inputs tried in {len(results)} runs "
                                  f"(inspect, convert, convert --dryrun): {refused} clean errors (exit 2), "
                                  f"{len(results) - refused} expected successes (inspect of damaged weights), "
                                  f"{tracebacks} tracebacks, {len(failures)} contract failures")
    assert not failures, "\n".join(failures)
    assert {r["id"] for r in results} == set(cases)  # every case ran


def test_every_kind_of_run_was_made(sweep):
    commands = {(r["id"], r["command"]) for r in sweep["results"]}
    for case in sweep["cases"].values():
        assert (case.id, "convert") in commands
        assert ((case.id, "inspect") in commands) == case.inspect
        assert ((case.id, "dryrun") in commands) == case.dryrun


def test_nothing_was_created_or_changed(sweep):
    (corpus_before, samples_before), (corpus_after, samples_after) = sweep["before"], sweep["after"]
    created = sorted(set(corpus_after) - set(corpus_before))
    changed = sorted(p for p in corpus_before if corpus_after.get(p) != corpus_before[p])
    assert not created, f"created: {created[:10]}"
    assert not changed, f"changed or removed: {changed[:10]}"
    assert samples_after == samples_before
    assert not list(sweep["tmpdir"].iterdir()), "temporary files left behind"


def test_the_tensorflow_cases_did_reach_tensorflow(sweep):
    """Otherwise the 'needs TensorFlow' cases would test nothing beyond the others: their worker
    reported the load stage (it imports TensorFlow right after)."""
    tf_runs = [r for r in sweep["results"] if sweep["cases"][r["id"]].tf and r["command"] == "convert"]
    assert tf_runs
    for r in tf_runs:
        assert '"stage": "load"' in r["stdout"], r["id"]
