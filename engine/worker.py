"""The TensorFlow half of `tfwizard convert`, in a process of its own (see convert(isolated=True)).

    python -m engine.worker        # reads a pickled Request on stdin

The parent has already planned and checked everything that needs no TensorFlow, and made the
temporary output directory; it sends the options and what plan() found as data (a Request), so
the worker parses no argv and plans nothing again. The worker converts into it and writes progress events, then one
"result" (the target results) or "error" event, as JSON lines on the file descriptor it is given
(stdout and stderr belong to TensorFlow's and the converters' chatter, which goes to a log).
It starts its own session, so a Ctrl-C at the terminal reaches only the parent, which kills the
worker's whole process group (converters and the Node.js verifier included) when interrupted.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import sandbox
from .errors import UserError
from .report import TargetResult, one_line

WORKER_TMP = ".tmp"  # the worker's TMPDIR, inside the temporary output, so it goes with it


class WorkerFailed(Exception):
    """The worker died without a result (a native crash, or killed from outside)."""


@dataclass(frozen=True)
class Request:
    """Everything the worker needs, as data: the checked options and what plan() found."""

    options: object  # ConversionOptions
    detection: object  # engine.detect.Detection
    info: object  # engine.inspect.ModelInfo
    tmp: str
    upstream_commands: dict
    events_fd: int
    parent: int = 0  # our parent's pid: the worker exits if it is already gone
    task: str = "convert"  # or "deep": freeze and describe the model (engine.frozen), convert nothing


def _portable(detection):
    """The Detection without what only inspect needed: a parsed SavedModel message is of a class
    built at run time (engine.protos) and cannot be pickled; prepare() reads graphs from the files
    again with TensorFlow and needs only Keras's parsed config (a dict)."""
    return detection if isinstance(detection.parsed, (dict, type(None))) else replace(detection, parsed=None)


def run_worker(detection, info, options, tmp: Path, commands: dict, emit) -> list[TargetResult]:
    """Run the conversion into `tmp` in a worker; relay its events to `emit`; return its TargetResults."""
    event = _run(Request(options, _portable(detection), info, str(tmp), commands, -1, os.getpid()), tmp, emit)
    return [TargetResult(**t) for t in event["targets"]]


def run_deep(detection, info, options, tmp: Path, emit) -> dict:
    """engine.deep.analyse() of the model in a worker (sandboxed as a conversion); its result."""
    return _run(Request(options, _portable(detection), info, str(tmp), {}, -1, os.getpid(), task="deep"),
                tmp, emit)["deep"]


def _run(request: Request, tmp: Path, emit) -> dict:
    """Start the worker on `request`, relay its events to `emit`, return its "result" event's fields."""
    worker_tmp = tmp / WORKER_TMP
    worker_tmp.mkdir()
    debug = bool(os.environ.get("TFWIZARD_DEBUG"))
    log = None if debug else open(worker_tmp / "worker.log", "wb")
    read_fd, write_fd = os.pipe()
    request = replace(request, events_fd=write_fd)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.worker"], stdin=subprocess.PIPE, stdout=log, stderr=log,
            pass_fds=(write_fd,), start_new_session=True, env={**os.environ, "TMPDIR": str(worker_tmp)},
        )
    finally:
        os.close(write_fd)
        if log:
            log.close()
    outcome, stage = None, {"stage": "start", "message": "starting"}
    try:
        proc.stdin.write(pickle.dumps(request))
        proc.stdin.close()
        with open(read_fd, encoding="utf-8") as events:
            for line in events:
                event = json.loads(line)
                kind = event.pop("event")
                if kind in ("result", "error"):
                    outcome = (kind, event)
                else:
                    if kind == "stage":
                        stage = event
                    emit(kind, **event)
        returncode = proc.wait()
    except BaseException:
        _kill(proc)
        raise
    if outcome is None:
        raise death(returncode, stage)
    kind, event = outcome
    if kind == "error":
        if event["user"]:
            raise UserError(event["message"])
        raise WorkerFailed(event["message"])
    return event


CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE, signal.SIGILL)


def death(returncode: int, stage: dict) -> Exception:
    """Why the worker died without a result, in one line: UserError when the model is the likely cause.
    (No TFWIZARD_DEBUG hint here: the CLI adds one to internal errors, once.)"""
    doing = stage.get("message", "starting")
    if returncode == -signal.SIGKILL:  # the kernel's OOM killer sends SIGKILL
        return UserError(f"the conversion process was killed (SIGKILL) while {doing}, most likely because the "
                         "machine ran out of memory for this model; close other programs or use a machine with more memory")
    if -returncode in CRASH_SIGNALS and stage.get("stage") == "op_libraries":
        name = signal.Signals(-returncode).name
        return UserError(f"TensorFlow crashed ({name}) while loading the --load-op-library libraries: a library built "
                         "for another TensorFlow, or a broken one; build it against this TensorFlow with "
                         "tf.sysconfig.get_compile_flags() and get_link_flags()")
    if -returncode in CRASH_SIGNALS and stage.get("stage") == "load":
        name = signal.Signals(-returncode).name
        return UserError(f"TensorFlow crashed ({name}) while loading the model: the model is malformed; "
                         "re-export it from TensorFlow")
    how = f"killed by {signal.Signals(-returncode).name}" if returncode < 0 else f"exited with {returncode}"
    return WorkerFailed(f"the conversion process {how} while {doing}, without a result")


def _kill(proc) -> None:
    """SIGKILL the worker's process group (it leads its own session) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _die_with_parent() -> None:
    """Linux: the kernel SIGKILLs us when the parent dies (kill -9 included), so no orphan converts on."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it kills us when it must
    _die_with_parent()
    request: Request = pickle.loads(sys.stdin.buffer.read())  # from our own parent only
    if request.parent and os.getppid() != request.parent:
        return 1  # the parent died before prctl took effect
    events = open(request.events_fd, "w", encoding="utf-8", buffering=1)

    def emit(event: str, **fields) -> None:
        events.write(json.dumps({"event": event, **fields}, default=str) + "\n")

    for warning in sandbox.confine(request.options, request.tmp):  # before anything reads the model
        emit("log", message=warning)

    from .pipeline import convert_targets

    try:
        if request.task == "deep":
            from .frozen import analyse

            emit("result", deep=analyse(request.detection, request.info, request.options,
                                        Path(request.tmp), emit))
            return 0
        targets = convert_targets(request.detection, request.info, request.options, Path(request.tmp),
                                  request.upstream_commands, emit)
    except UserError as e:
        emit("error", user=True, message=str(e))
        return 2
    except Exception as e:  # reported by the parent as an internal error, in one line
        from .output import disk_full

        if full := disk_full(e, Path(request.tmp).parent):
            emit("error", user=True, message=str(full))
            return 2
        if sandbox.blocked(e):
            emit("error", user=True, message=sandbox.blocked(e))
            return 2
        if os.environ.get("TFWIZARD_DEBUG"):
            import traceback

            traceback.print_exc()  # our stderr is the user's in debug mode
        emit("error", user=False, message=one_line(e))
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
