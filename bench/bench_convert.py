"""Benchmark `tfwizard convert` (ONNX + TF.js + OpenVINO in one run) against the three upstream CLIs.

Run from the repo root (runs are long: a few minutes each):

    .venv/bin/python bench/bench_convert.py [--repeat N]

1. Generates (once, cached) a Keras ResNet-50 SavedModel with random weights at
   bench/.cache/resnet50_savedmodel, in a child process; its serving_default
   signature takes float32 [1,224,224,3].
2. Runs each tool N times as a separate subprocess (wall time around the child, peak
   RSS from os.wait4's per-child rusage, which includes its reaped children):
     ours:     python -m wizard convert DIR --to onnx,tfjs,openvino -o OUT --no-verify
               --force --progress json   (the arrival time of each JSON line gives phases,
               and the largest VmHWM of the child and its descendants read from /proc then, the peak so far)
     upstream: python -m tf2onnx.convert (default opset), tensorflowjs_converter
               (tfjs_graph_model), ovc (--compress_to_fp16=False), one after another.
3. Prints a table, ours' phase breakdown and the goals: ours <= 0.6x the upstream sum
   (median wall), ours' peak <= 0.5x tf2onnx's peak (ours' peak covers all three targets).
Exits 0 unless a tool fails.
"""
import argparse, json, os, shlex, statistics, subprocess, sys, tempfile, time
from pathlib import Path

from bench_inspect import ROOT, generate, run_once  # same directory; run_once exits on failure

SM = ROOT / "bench" / ".cache" / "resnet50_savedmodel"
BIN = Path(sys.executable).parent
TARGETS = ("onnx", "tfjs", "openvino")

GEN_CODE = r"""
import os, shutil, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf, keras
model = keras.applications.ResNet50(weights=None)
archive = keras.export.ExportArchive()
archive.track(model)
archive.add_endpoint("serving_default", lambda x: model(x, training=False),
                     input_signature=[tf.TensorSpec([1, 224, 224, 3], tf.float32, name="input")])
tmp = sys.argv[1] + ".tmp"
shutil.rmtree(tmp, ignore_errors=True)
archive.write_out(tmp, verbose=False)
os.replace(tmp, sys.argv[1])
"""


def dir_mib(path):
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def run_ours(out):
    """Like bench_inspect.run_once, but stamps each stdout line as it arrives."""
    cmd = [sys.executable, "-m", "wizard", "convert", str(SM), "--to", ",".join(TARGETS), "-o", str(out),
           "--no-verify", "--force", "--progress", "json"]
    events, peak = [], 0.0
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err)
        for line in p.stdout:
            t = time.perf_counter() - t0
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                continue  # stray non-JSON output of a library
            if isinstance(doc, dict) and "event" in doc:
                peak = max(peak, hwm_mib(p.pid))  # kept once the worker (a descendant) has exited
                events.append((t, doc, peak))
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.stdout.close()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            sys.exit(f"command failed ({code}): {shlex.join(cmd)}\n{err.read().decode()[-3000:]}")
    return wall, ru.ru_maxrss / 1024, events


def hwm_mib(pid):
    """Peak RSS so far (Linux VmHWM) of a running process and its descendants, in MiB: the
    largest one, as wait4's ru_maxrss counts it (TensorFlow runs in tfwizard's worker process);
    0 for a process that is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            own = next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0.0
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        children = []
    return max([own, *map(hwm_mib, children)])


def phases(events, wall, peak):
    """[(label, seconds, peak MiB at its end)] between consecutive non-log events, start to exit."""
    marks = [(t, e, m) for t, e, m in events if e["event"] != "log"]
    out, prev_t, label = [], 0.0, "start -> first event (python, wizard, plan)"
    for t, e, m in marks:
        out.append((label, t - prev_t, m))
        tgt = f" {e['target']}" if e.get("target") else ""
        if e["event"] == "stage":
            label = f"stage {e.get('stage', '?')}{tgt}: {e.get('message', '')}"
        elif e["event"] == "done":
            label = "done -> process exit (report written; interpreter teardown)"
        else:
            label = f"after {e['event']}{tgt} {e.get('status', '')}".rstrip()
        prev_t = t
    out.append((label if marks else "whole run (no events)", wall - prev_t, peak))
    return out


def upstream_cmds(out):
    return {
        "tf2onnx": [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(SM),
                    "--output", str(out / "model.onnx")],
        "tensorflowjs_converter": [str(BIN / "tensorflowjs_converter"), "--input_format=tf_saved_model",
                                   "--output_format=tfjs_graph_model", str(SM), str(out / "tfjs")],
        "ovc": [str(BIN / "ovc"), str(SM), "--output_model", str(out / "openvino" / "model.xml"),
                "--compress_to_fp16=False"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--ours-only", action="store_true", help="skip the upstream CLIs (phases and peak only)")
    args = ap.parse_args()

    generate(SM, GEN_CODE, SM / "saved_model.pb")
    print(f"model: {SM.relative_to(ROOT)}  {dir_mib(SM):.1f} MiB")
    res = {k: {"walls": [], "peaks": []} for k in ("ours", "tf2onnx", "tensorflowjs_converter", "ovc")}
    last_events, last_peak = [], None
    with tempfile.TemporaryDirectory(prefix="bench_convert_") as tmp:
        tmp = Path(tmp)
        for i in range(args.repeat):
            print(f"run {i + 1}/{args.repeat}:", flush=True)
            w, m, last_events = run_ours(tmp / "ours")
            last_peak = m
            res["ours"]["walls"].append(w), res["ours"]["peaks"].append(m)
            print(f"  ours: {w:.1f}s {m:.0f} MiB", flush=True)
            if args.ours_only:
                continue
            up = tmp / "upstream"
            up.mkdir(exist_ok=True)
            for name, cmd in upstream_cmds(up).items():
                w, m, _ = run_once(cmd)
                res[name]["walls"].append(w), res[name]["peaks"].append(m)
                print(f"  {name}: {w:.1f}s {m:.0f} MiB", flush=True)
        if args.ours_only:
            for name, dt, m in phases(last_events, res["ours"]["walls"][-1], last_peak):
                print(f"  {dt:7.2f} s  {m:5.0f} MiB  {name}")
            return
        theirs = {"onnx": up / "model.onnx", "tfjs": up / "tfjs", "openvino": up / "openvino"}
        sizes = {t: (dir_mib(tmp / "ours" / t), dir_mib(theirs[t])) for t in TARGETS}
        last_wall = res["ours"]["walls"][-1]

    for r in res.values():
        r["median"], r["peak"] = statistics.median(r["walls"]), max(r["peaks"])
    upstream_sum = sum(res[k]["median"] for k in ("tf2onnx", "tensorflowjs_converter", "ovc"))
    label = {"ours": "tfwizard (onnx+tfjs+ov)"}
    print(f"\n{'tool':26} {'wall s (median)':>16} {'peak MiB':>9}")
    for name, r in res.items():
        print(f"{label.get(name, name):26} {r['median']:>16.1f} {r['peak']:>9.0f}")
    print(f"{'upstream sum':26} {upstream_sum:>16.1f} {max(res[k]['peak'] for k in res if k != 'ours'):>9.0f} (max)")

    print("\noutput size MiB (ours / upstream):  " +
          ",  ".join(f"{t} {a:.1f} / {b:.1f}" for t, (a, b) in sizes.items()))
    print(f"\nours' phases (last run, {last_wall:.1f} s; from --progress json line arrival; peak RSS so far):")
    for name, dt, m in phases(last_events, last_wall, last_peak):
        print(f"  {dt:7.2f} s  {m:5.0f} MiB  {name}")

    ratio = res["ours"]["median"] / upstream_sum
    mem = res["ours"]["peak"] / res["tf2onnx"]["peak"]
    print("\ngoals:")
    for goal, ok in ((f"ours / upstream sum wall <= 0.6   ({ratio:.2f})", ratio <= 0.6),
                     (f"ours peak / tf2onnx peak <= 0.5   ({mem:.2f}: {res['ours']['peak']:.0f} / "
                      f"{res['tf2onnx']['peak']:.0f} MiB)", mem <= 0.5)):
        print(f"  {'met    ' if ok else 'NOT met'}  {goal}")


if __name__ == "__main__":
    main()
