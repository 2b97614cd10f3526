"""The TensorFlow half of `tfwizard convert`, in a process of its own (see convert(isolated=True)).

    python -m engine.worker        # reads {"argv": [...], "tmp": DIR, "events_fd": N} on stdin

The parent has already planned and checked everything that needs no TensorFlow, and made the
temporary output directory. The worker converts into it and writes progress events, then one
"result" (the target results) or "error" event, as JSON lines on the file descriptor it is given
(stdout and stderr belong to TensorFlow's and the converters' chatter, which goes to a log).
It starts its own session, so a Ctrl-C at the terminal reaches only the parent, which kills the
worker's whole process group (converters and the Node.js verifier included) when interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from . import sandbox
from .errors import UserError

WORKER_TMP = ".tmp"  # the worker's TMPDIR, inside the temporary output, so it goes with it


class WorkerFailed(Exception):
    """The worker died without a result (a native crash, or killed from outside)."""


def run_worker(options, tmp: Path, emit) -> list:
    """Run the conversion into `tmp` in a worker; relay its events to `emit`; return its TargetResults."""
    from .convert import TargetResult

    worker_tmp = tmp / WORKER_TMP
    worker_tmp.mkdir()
    debug = bool(os.environ.get("TFWIZARD_DEBUG"))
    log = None if debug else open(worker_tmp / "worker.log", "wb")
    read_fd, write_fd = os.pipe()
    request = {"argv": options.argv()[1:], "tmp": str(tmp), "events_fd": write_fd}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.worker"], stdin=subprocess.PIPE, stdout=log, stderr=log,
            pass_fds=(write_fd,), start_new_session=True, env={**os.environ, "TMPDIR": str(worker_tmp)},
        )
    finally:
        os.close(write_fd)
        if log:
            log.close()
    outcome = None
    try:
        proc.stdin.write(json.dumps(request).encode())
        proc.stdin.close()
        with open(read_fd, encoding="utf-8") as events:
            for line in events:
                event = json.loads(line)
                kind = event.pop("event")
                if kind in ("result", "error"):
                    outcome = (kind, event)
                else:
                    emit(kind, **event)
        returncode = proc.wait()
    except BaseException:
        _kill(proc)
        raise
    if outcome is None:
        how = f"killed by {signal.Signals(-returncode).name}" if returncode < 0 else f"exited with {returncode}"
        raise WorkerFailed(f"the conversion process {how} without a result"
                           + ("" if debug else "; rerun with TFWIZARD_DEBUG=1 to see its output"))
    kind, event = outcome
    if kind == "error":
        if event["user"]:
            raise UserError(event["message"])
        raise WorkerFailed(event["message"])
    return [TargetResult(**t) for t in event["targets"]]


def _kill(proc) -> None:
    """SIGKILL the worker's process group (it leads its own session) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it kills us when it must
    request = json.loads(sys.stdin.read())
    events = open(request["events_fd"], "w", encoding="utf-8", buffering=1)

    def emit(event: str, **fields) -> None:
        events.write(json.dumps({"event": event, **fields}, default=str) + "\n")

    for warning in sandbox.confine(request):  # before anything reads the model
        emit("log", message=warning)

    from .cli import build_parser, options_from_args
    from .convert import _convert_targets, _one_line, plan, upstream_commands

    try:
        options = options_from_args(build_parser().parse_args(request["argv"]))
        detection, info = plan(options)
        targets = _convert_targets(detection, info, options, Path(request["tmp"]), upstream_commands(options, info), emit)
    except UserError as e:
        emit("error", user=True, message=str(e))
        return 2
    except Exception as e:  # reported by the parent as an internal error, in one line
        if sandbox.blocked(e):
            emit("error", user=True, message=sandbox.blocked(e))
            return 2
        if os.environ.get("TFWIZARD_DEBUG"):
            import traceback

            traceback.print_exc()  # our stderr is the user's in debug mode
        emit("error", user=False, message=_one_line(e))
        return 1
    emit("result", targets=[asdict(t) for t in targets])
    return 0


if __name__ == "__main__":
    code = main()
    # Skip the interpreter's teardown, which after a conversion is TensorFlow's (~1.2 s of
    # destructors that the parent would wait for). Results are written, events line-buffered.
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
