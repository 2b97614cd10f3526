"""Benchmark `tfwizard inspect` against the legacy TF "summarize_graph" rule.

Run from the repo root:

    .venv/bin/python bench/bench_inspect.py [--repeat N] [--ours-cmd "CMD {pb}"]

1. Generates (once, cached) a ~100 MB frozen GraphDef of Keras ResNet-50 with
   random weights at bench/.cache/resnet50_frozen.pb, in a child process.
2. Runs each tool N times as a separate subprocess; wall time is measured
   around the child, peak RSS comes from os.wait4's per-child rusage (Linux
   also counts the pre-exec image, so ~15 MiB, this script's own RSS, is a floor).
     ours:     python -m wizard inspect <pb> --json   (cwd = repo root)
     baseline: child Python that imports TensorFlow, imports the GraphDef and
               applies the summarize_graph rule (includes TF import time).
3. Checks both agree on inputs, outputs and op type counts.
4. Prints a table and the goals (ours <= 0.5 s, <= 300 MiB, >= 20x faster).
Always exits 0 unless something fails to run.
"""
import argparse, json, os, shlex, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PB = ROOT / "bench" / ".cache" / "resnet50_frozen.pb"

GEN_CODE = r"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf, keras
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
model = keras.applications.ResNet50(weights=None)
fn = tf.function(lambda x: model(x, training=False),
                 input_signature=[tf.TensorSpec([1, 224, 224, 3], tf.float32, name="input")])
frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
tmp = sys.argv[1] + ".tmp"
with open(tmp, "wb") as f:
    f.write(frozen.graph.as_graph_def().SerializeToString())
os.replace(tmp, sys.argv[1])
"""

BASELINE_CODE = r"""
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
t0 = time.perf_counter()
import tensorflow as tf
t1 = time.perf_counter()
gd = tf.compat.v1.GraphDef()
with open(sys.argv[1], "rb") as f:
    gd.ParseFromString(f.read())
g = tf.Graph()
with g.as_default():
    tf.graph_util.import_graph_def(gd, name="")
ops = g.get_operations()
consumed = {t.op.name for op in ops for t in op.inputs}  # data inputs only
skip = {"Const", "Assign", "NoOp", "Assert", "Placeholder"}
counts = {}
for op in ops:
    counts[op.type] = counts.get(op.type, 0) + 1
t2 = time.perf_counter()
print(json.dumps({
    "format": "frozen_graphdef",
    "inputs": [op.name for op in ops if op.type == "Placeholder"],
    "outputs": [op.name for op in ops if op.name not in consumed and op.type not in skip],
    "ops": counts,
    "_timing": {"import_s": t1 - t0, "rule_s": t2 - t1},
}))
"""


def generate(path=PB, code=GEN_CODE, done=PB):
    """Build the bench model at `path` with `code` in a child process, unless `done` (its last
    file) is there from an earlier run. Shared with bench_convert."""
    if done.exists() and done.stat().st_size > 0:
        print(f"reusing {path.relative_to(ROOT)}")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating {path.relative_to(ROOT)} (child process) ...", flush=True)
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)


def run_once(cmd):
    """Run cmd in a child; return (wall_s, peak_MiB, stdout). Uses os.wait4 for per-child rusage."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {shlex.join(cmd)}\n{stderr[-3000:]}")
    return wall, ru.ru_maxrss / 1024, stdout  # ru_maxrss is KiB on Linux


def measure(name, cmd, repeat):
    walls, rss, outs = [], [], []
    for _ in range(repeat):
        w, m, o = run_once(cmd)
        walls.append(w), rss.append(m), outs.append(o)
    print(f"  {name}: " + ", ".join(f"{w:.2f}s" for w in walls), flush=True)
    try:
        doc = json.loads(outs[-1])
    except json.JSONDecodeError:
        sys.exit(f"{name}: output is not JSON: {outs[-1][:500]!r}")
    return {"median": statistics.median(walls), "best": min(walls), "peak": max(rss), "doc": doc}


def _name(x):
    n = x.get("name", "") if isinstance(x, dict) else str(x)
    return n[:-2] if n.endswith(":0") else n


def normalize(doc):
    ops = doc.get("ops", {})
    if isinstance(ops, list):  # e.g. [{"op"/"type": ..., "count": ...}]
        ops = {d.get("op", d.get("type")): d["count"] for d in ops}
    return (sorted(map(_name, doc.get("inputs", []))),
            sorted(map(_name, doc.get("outputs", []))),
            {k: int(v) for k, v in ops.items()})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ours-cmd", help="stand-in for our CLI; '{pb}' is replaced by the model path")
    args = ap.parse_args()

    generate()
    print(f"model: {PB.relative_to(ROOT)}  {PB.stat().st_size / 2**20:.1f} MiB")
    ours_cmd = ([a.replace("{pb}", str(PB)) for a in shlex.split(args.ours_cmd)] if args.ours_cmd
                else [sys.executable, "-m", "wizard", "inspect", str(PB), "--json"])
    print(f"running {args.repeat}x each ...")
    ours = measure("ours", ours_cmd, args.repeat)
    base = measure("tf rule", [sys.executable, "-c", BASELINE_CODE, str(PB)], args.repeat)

    (oi, oo, oc), (bi, bo, bc) = normalize(ours["doc"]), normalize(base["doc"])
    print("\nagreement:")
    for what, a, b in (("inputs", oi, bi), ("outputs", oo, bo), ("op counts", oc, bc)):
        ok = a == b
        print(f"  {what:10} {'same' if ok else 'DIFFER'}" + ("" if ok else f"  ours={a}  tf={b}"))

    t = base["doc"]["_timing"]
    print(f"\n{'tool':24} {'wall s (median, best)':>22} {'peak MiB':>9}")
    for name, r in (("tfwizard inspect", ours), ("tf summarize rule", base)):
        print(f"{name:24} {r['median']:>13.3f}, {r['best']:.3f} {r['peak']:>9.0f}")
    print(f"  (tf child: import tensorflow {t['import_s']:.2f}s, rule alone {t['rule_s']:.2f}s)")
    ratio = base["median"] / ours["median"]
    print(f"\nratio baseline/ours (median wall): {ratio:.1f}x")
    print("goals:")
    for goal, ok in ((f"ours <= 0.5 s wall   ({ours['median']:.3f} s)", ours["median"] <= 0.5),
                     (f"ours <= 300 MiB peak ({ours['peak']:.0f} MiB)", ours["peak"] <= 300),
                     (f">= 20x faster than TF rule ({ratio:.1f}x)", ratio >= 20)):
        print(f"  {'met    ' if ok else 'NOT met'}  {goal}")


if __name__ == "__main__":
    main()
