"""`tfwizard convert`: plan (no TensorFlow) → the pipeline (TensorFlow, in a worker) → report.json.

Output goes to a temporary sibling of OUTDIR and is renamed into place only at the end,
so an interrupted or failed run leaves nothing half-written, and an existing OUTDIR is
replaced only with --force. One target failing does not stop the others.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from .options import ConversionOptions
from .plan import check_output_dir, plan, upstream_commands
from .report import Report
from .resources import check_resources
from .signals import Emit, checking_interrupts, raise_if_interrupted, signals_held
from .worker import WORKER_TMP

# Kept importable from here for existing callers; new code imports from the module that owns the name.
from .plan import upstream_lines  # noqa: F401,E402
from .report import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_MISMATCH, EXIT_OK, TargetResult, tolerance_text, verification_text  # noqa: F401,E402
from .resources import GIB, MIB, available_memory, check_space, disk_needed, memory_needed, model_bytes  # noqa: F401,E402
from .signals import Interrupted, interruptible  # noqa: F401,E402

def convert(options: ConversionOptions, emit: Emit, *, isolated: bool = False) -> Report:
    """Convert to every target into a temporary sibling of OUTDIR, then move it into place.

    isolated=True (the CLI) runs the TensorFlow part in a worker process (engine.worker) in its
    own session: this process never imports TensorFlow, and on SIGINT/SIGTERM (Interrupted, see
    interruptible()) it kills the worker's process group and removes the temporary output. An
    exception raised by a signal handler inside native code can abort the process instead of
    unwinding (onnx's nanobind initialisation did), so only a process that runs nothing native
    may be interrupted that way. In-process (isolated=False, for tests and library use), an
    interruption is best effort.
    """
    started = time.perf_counter()
    detection, info = plan(options)
    out = check_output_dir(options)
    check_resources(detection, options, out)
    report = Report(
        model={"path": info.path, "format": info.format, "reason": info.reason,
               "inputs": [asdict(i) for i in info.inputs], "outputs": [asdict(o) for o in info.outputs]},
        command=options.command(), targets=[],
    )
    emit = checking_interrupts(emit)
    for warning in info.warnings:
        emit("log", message=f"warning: {warning}")
    tmp = None
    try:
        with signals_held():  # a signal now would leave a temp dir we don't know the name of yet
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.resolve().parent))
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the output should be as readable as a mkdir's
        commands = upstream_commands(options, info)
        if isolated:
            from .worker import run_worker

            report.targets = run_worker(detection, info, options, tmp, commands, emit)
        else:
            from .pipeline import convert_targets

            report.targets = convert_targets(detection, info, options, tmp, commands, emit)
        report.targets.sort(key=lambda r: options.targets.index(r.target))
        report.seconds = round(time.perf_counter() - started, 2)
        (tmp / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
        shutil.rmtree(tmp / WORKER_TMP, ignore_errors=True)  # the worker's TMPDIR (engine.worker)
        raise_if_interrupted()
        with signals_held():  # two renames: not to be split by a signal
            _move_into_place(tmp, out)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        # Libraries turn an exception from a signal handler into their own errors on the way up
        # (TensorFlow's tracing gave an AttributeError): after a signal, it is the interruption.
        raise_if_interrupted()
        raise
    if options.report:
        Path(options.report).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    emit("done", exit_code=report.exit_code, output_dir=str(out), seconds=report.seconds)
    return report


def _move_into_place(tmp: Path, out: Path) -> None:
    """Replace `out` with `tmp` (renames on one filesystem; the old output is removed last)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{int(time.time())}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
