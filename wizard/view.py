"""`tfwizard view MODEL`: the model as a picture, in Netron, served on 127.0.0.1 only.

Works for the originals (frozen .pb/.pbtxt, .meta, SavedModel directories, Keras files) and
for what tfwizard writes (model.onnx, model.xml + .bin, model.json + shards, .tflite): Netron
reads the files next to the one it is given. `serve()` / `stop()` are for the full-screen app,
which shows the URL and keeps running. No TensorFlow here.

The server listens on 127.0.0.1 and the model never leaves this machine; Netron's page itself,
once open in a browser, shows a cookie notice and then reports anonymous usage (such as the
model's format) to Google Analytics, as netron.app does. Its page also stops working 180 days
after the netron release was built (it insists on an update), so keep the pin fresh
(tests/test_view.py checks).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from engine.errors import UserError

from . import steps

HOST = "127.0.0.1"  # never a public interface: a model can be someone's IP
# What to open in a directory, best first: a SavedModel, then what tfwizard writes per target.
DIRECTORY_FILES = ("saved_model.pb", "saved_model.pbtxt", "model.json", "model.onnx", "model.xml", "model.tflite")
MODEL_SUFFIXES = (*steps.MODEL_SUFFIXES, ".onnx", ".xml", ".tflite", ".json")  # inputs, and what we write


def model_file(path: str | Path) -> Path:
    """The one file Netron should open for `path` (a file, a SavedModel or a target directory)."""
    path = Path(str(path).strip()).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise UserError(f"{path}: no such file or directory; check the path")
    for name in DIRECTORY_FILES:
        if (path / name).is_file():
            return path / name
    targets = sorted(p.name for p in path.iterdir() if p.is_dir() and any(p.glob("model.*")))
    if targets:  # a tfwizard output directory: one model per target
        raise UserError(f"{path}: holds several converted models ({', '.join(targets)}); "
                        f"pass one of them, e.g. {path / targets[0]}")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES)
    if len(files) == 1:
        return files[0]
    if files:
        raise UserError(f"{path}: several model files ({', '.join(p.name for p in files[:5])}); pass the one to view")
    raise UserError(f"{path}: no model file in this directory; pass a model file or a SavedModel directory")


def serve(path: str | Path, *, port: int | None = None) -> str:
    """Start Netron on 127.0.0.1 in a background thread; return its URL. port None/0: a free one."""
    import netron

    file = model_file(path)
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)  # netron.serve() would otherwise logging.basicConfig() our process to stderr
    try:
        host, bound = netron.serve(str(file), address=(HOST, port or 0), browse=False)
    except (OSError, OverflowError) as e:
        raise UserError(f"port {port} on {HOST}: cannot listen ({getattr(e, 'strerror', None) or e}); "
                        "choose another with --port, or leave it out for a free one") from None
    finally:
        root.removeHandler(guard)
    return f"http://{host}:{bound}"


def stop(url: str | None = None) -> None:
    """Stop the server at `url` (as serve() returned it), or every one this process started."""
    import netron

    address = None
    if url is not None:
        host, _, port = url.removeprefix("http://").rstrip("/").rpartition(":")
        address = (host, int(port))
    netron.stop(address)
    deadline = time.monotonic() + 2
    while netron.status(address) and time.monotonic() < deadline:  # until the port is really closed
        time.sleep(0.02)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tfwizard view",
                                     description="Open a model (original or converted) in Netron, on 127.0.0.1 only.")
    parser.add_argument("model", help="model file, SavedModel directory, or a converted target's directory")
    parser.add_argument("--port", type=int, help="port to serve on (default: a free one)")
    parser.add_argument("--browse", action="store_true", help="also open it in the default web browser")
    args = parser.parse_args(argv)
    try:
        url = serve(args.model, port=args.port)
    except UserError as e:
        print(f"tfwizard: error: {e}", file=sys.stderr)
        return e.exit_code
    try:  # from the moment the URL is out, Ctrl-C is the way to stop (the reader may act on it at once)
        print(f"Netron is showing {model_file(args.model)} at {url}  (Ctrl-C stops it)", flush=True)
        if args.browse:
            import webbrowser

            webbrowser.open(url)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stop(url)
        print("tfwizard: stopped Netron", file=sys.stderr)
        return 0
