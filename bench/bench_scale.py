"""How conversion cost grows with the model: the same architecture at ~0.1, 0.5, 1 and 2.2 GB of weights.

    .venv/bin/python bench/bench_scale.py [--sizes 0.1,0.5,1,2.2] [--only ours,ovc,tf2onnx,tfjs]
        [--work DIR] [--timeout 1800] [--mem-limit-gb 12]

The model: a SavedModel (tf.saved_model.save of a tf.Module, so each weight is written once) of
8 Dense layers (relu, width w; the last linear) on a float32 [-1, w] input; w is chosen so that the
weights total the size asked for. Weights are random (scaled 1/sqrt(w)), so verification compares
real numbers. Built once per size into --work (default bench/.cache/scale).

Per size it runs, each alone, under /usr/bin/time -v (peak RSS: the largest process of the tree):
  ours     tfwizard convert DIR --to onnx,openvino,tfjs,tflite (verified), with
           --quantize tflite:float16 at sizes over 2 GB (what the issue measured; float32 works too);
  ovc      ovc DIR --compress_to_fp16=False;
  tf2onnx  python -m tf2onnx.convert --saved-model DIR (--large_model over 2 GB);
  tfjs     tensorflowjs_converter --input_format=tf_saved_model.
It prints seconds, peak RSS and peak RSS / weight bytes per tool and size (markdown table).
A run that passes --timeout or --mem-limit-gb (RSS of the tree, polled) is killed and reported so.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LAYERS = 8
TWO_GB = 2 ** 31

BUILD = r"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np, tensorflow as tf
width, layers, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)

class Model(tf.Module):
    def __init__(self):
        self.w = []
        for k in range(layers):
            w = rng.standard_normal((width, width), dtype=np.float32)
            w *= np.float32(1.4 / np.sqrt(width))
            self.w.append((tf.Variable(w, name=f"w{k}"), tf.Variable(np.zeros(width, np.float32), name=f"b{k}")))
            del w

    @tf.function(input_signature=[tf.TensorSpec([None, width], tf.float32, name="x")])
    def serve(self, x):
        for k, (w, b) in enumerate(self.w):
            x = tf.matmul(x, w) + b
            x = tf.nn.relu(x) if k < layers - 1 else x
        return {"y": x}

m = Model()
tf.saved_model.save(m, out, signatures={"serving_default": m.serve})
"""


def width_for(gb: float) -> int:
    """Width (a multiple of 64) whose LAYERS w*w float32 matrices total about gb GB."""
    return max(64, int(round((gb * 1e9 / 4 / LAYERS) ** 0.5 / 64)) * 64)


def weight_bytes(width: int) -> int:
    return LAYERS * (width * width + width) * 4


def build(work: Path, gb: float) -> tuple[Path, int]:
    width = width_for(gb)
    path = work / f"dense{LAYERS}x{width}"
    if not (path / "saved_model.pb").exists():
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([sys.executable, "-c", BUILD, str(width), str(LAYERS), str(tmp)], check=True)
        tmp.rename(path)
    return path, weight_bytes(width)


def tree_rss(pid: int) -> int:
    """Sum of VmRSS (bytes) of pid and its descendants."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for t in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (t / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def run(argv: list[str], *, timeout: float, mem_limit: int, log: Path) -> dict:
    """argv under /usr/bin/time -v in its own session; kills the tree past timeout or mem_limit."""
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(["/usr/bin/time", "-v", *argv], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        killed = []

        def guard():
            while proc.poll() is None:
                if time.perf_counter() - t0 > timeout:
                    killed.append("timeout")
                elif tree_rss(proc.pid) > mem_limit:
                    killed.append(f"memory > {mem_limit / 1e9:.0f} GB")
                if killed:
                    os.killpg(proc.pid, signal.SIGKILL)
                    return
                time.sleep(0.5)

        watcher = threading.Thread(target=guard, daemon=True)
        watcher.start()
        code = proc.wait()
        watcher.join()
    text = log.read_text(errors="replace")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return {"seconds": time.perf_counter() - t0, "code": code, "killed": killed[0] if killed else None,
            "peak": int(peak.group(1)) * 1024 if peak else 0, "log": str(log)}


def commands(tool: str, model: Path, out: Path, weights: int) -> list[str]:
    large = weights > TWO_GB
    if tool == "ours":
        return [str(BIN / "tfwizard"), "convert", str(model), "--to", "onnx,openvino,tfjs,tflite", "-o", str(out),
                "--force"] + (["--quantize", "tflite:float16"] if large else [])
    if tool == "ovc":
        return [str(BIN / "ovc"), str(model), "--output_model", str(out / "model.xml"), "--compress_to_fp16=False"]
    if tool == "tf2onnx":
        return [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(model), "--output",
                str(out / ("model.zip" if large else "model.onnx"))] + (["--large_model"] if large else [])
    if tool == "tfjs":
        return [str(BIN / "tensorflowjs_converter"), "--input_format=tf_saved_model",
                "--output_format=tfjs_graph_model", str(model), str(out)]
    raise KeyError(tool)


def outcome(tool: str, r: dict) -> str:
    if r["killed"]:
        return f"killed ({r['killed']})"
    if r["code"] != 0:
        lines = [ln for ln in Path(r["log"]).read_text(errors="replace").splitlines()
                 if ln.strip() and not ln.startswith("\t")]
        why = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1] if lines else "")
        return f"failed ({why.strip()[:90]})"
    if tool == "ours":
        # The summary lines: "onnx   2.2 GB   32.1 s  max abs diff ...: PASS  [strategy]", or a failure's message.
        lines = re.findall(r"^(onnx|openvino|tfjs|tflite)\s+(.*)$", Path(r["log"]).read_text(errors="replace"), re.M)
        verified = [t for t, rest in lines if "PASS" in rest]
        others = [f"{t}: {rest.strip()[:60]}" for t, rest in lines if "PASS" not in rest]
        return f"ok, {len(verified)} of {len(lines)} targets verified" + (f" ({'; '.join(others)})" if others else "")
    return "ok"


def peak(r: dict, args) -> str:
    return f"> {args.mem_limit_gb:g} GB" if r["killed"] and "memory" in r["killed"] else f"{r['peak'] / 1e9:.2f} GB"


def ratio(r: dict, args, weights: int) -> str:
    if r["killed"] and "memory" in r["killed"]:
        return f"> {args.mem_limit_gb * 1e9 / weights:.1f}x"
    return f"{r['peak'] / weights:.2f}x"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="0.1,0.5,1,2.2")
    ap.add_argument("--only", default="ours,ovc,tf2onnx,tfjs")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / ".cache" / "scale")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--mem-limit-gb", type=float, default=12)
    ap.add_argument("--keep", action="store_true", help="keep the built models (they are big)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for gb in map(float, args.sizes.split(",")):
        model, weights = build(args.work, gb)
        for tool in args.only.split(","):
            out = args.work / f"out-{tool}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir() if tool not in ("ours",) else None
            r = run(commands(tool, model, out, weights), timeout=args.timeout, mem_limit=int(args.mem_limit_gb * 1e9),
                    log=args.work / f"{model.name}-{tool}.log")
            rows.append((weights, tool, r, outcome(tool, r)))
            print(f"{weights / 1e9:.2f} GB {tool}: {rows[-1][3]}, {r['seconds']:.0f} s, peak {peak(r, args)} "
                  f"({ratio(r, args, weights)})", flush=True)
            shutil.rmtree(out, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(model, ignore_errors=True)
    print("\n| weights | tool | result | seconds | peak RSS | peak / weights |\n|---|---|---|---|---|---|")
    for weights, tool, r, what in rows:
        print(f"| {weights / 1e9:.2f} GB | {tool} | {what} | {r['seconds']:.0f} | {peak(r, args)} | "
              f"{ratio(r, args, weights)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
