"""`tfwizard convert`: plan (no TensorFlow) → the pipeline (TensorFlow, in a worker) → report.json.

Output goes to a temporary sibling of OUTDIR and is renamed into place only at the end,
so an interrupted or failed run leaves nothing half-written, and an existing OUTDIR is
replaced only with --force. One target failing does not stop the others.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from . import output
from .options import ConversionOptions
from .plan import check_output_dir, plan, upstream_commands
from .report import Report
from .text import shell_quote
from .resources import check_resources
from .signals import Emit, checking_interrupts, raise_if_interrupted, signals_held
from .worker import WORKER_TMP

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
    with output.locked(out):  # a second run on this -o is refused until we are done
        output.remove_stale_temporaries(out)
        earlier = output.needs_consent(check_output_dir(options, probe=False))  # re-checked under the lock
        check_resources(detection, options, out)
        return _convert_into(out, earlier, detection, info, options, emit, isolated, started)


def _interface(info, options) -> dict:
    from .interface import final_inputs, final_outputs

    return {"inputs": [{"name": i.name, "dtype": i.dtype, "shape": i.shape} for i in final_inputs(info, options)],
            "outputs": final_outputs(info, options)}


def _convert_into(out: Path, earlier, detection, info, options, emit: Emit, isolated: bool, started: float) -> Report:
    report = Report(
        model={"path": info.path, "format": info.format, "reason": info.reason,
               "inputs": [asdict(i) for i in info.inputs], "outputs": [asdict(o) for o in info.outputs]},
        command=options.command(), targets=[], interface=_interface(info, options),
    )
    emit = checking_interrupts(emit)
    for warning in info.warnings:
        emit("log", message=f"warning: {warning}")
    tmp = place = None
    try:
        with signals_held():  # a signal now would leave a temp dir we don't know the name of yet
            tmp = output.make_temporary(out)
        commands = upstream_commands(options, info)
        if isolated:
            from .worker import run_worker

            report.targets = run_worker(detection, info, options, tmp, commands, emit)
        else:
            from .pipeline import convert_targets

            report.targets = convert_targets(detection, info, options, tmp, commands, emit)
        report.targets.sort(key=lambda r: options.targets.index(r.target))
        if options.benchmark:
            from .benchmark import block, model_bytes

            report.benchmark = block(report.targets, model_bytes(info.path, info.checkpoint))
        if options.tensorboard_logdir:
            from .tensorboard import STAGING, publish

            if publish(tmp, options.tensorboard_logdir):
                emit("log", message=f"TensorBoard graphs in {options.tensorboard_logdir}/original and /prepared: "
                     f"tensorboard --logdir {shell_quote(options.tensorboard_logdir)}")
            shutil.rmtree(tmp / STAGING, ignore_errors=True)
        report.seconds = round(time.perf_counter() - started, 2)
        (tmp / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
        shutil.rmtree(tmp / WORKER_TMP, ignore_errors=True)  # the worker's TMPDIR (engine.worker)
        raise_if_interrupted()
        with signals_held():  # a few renames: not to be split by a signal
            place, why = output.move_into_place(tmp, out, earlier)
        if why:
            emit("log", message=f"warning: {why}")
        if options.report:
            Path(options.report).write_text(json.dumps(report.to_json(), indent=2) + "\n")
        emit("done", exit_code=report.exit_code, output_dir=str(place), seconds=report.seconds)
    except BaseException as e:
        if place is not None:  # the output is complete: an interruption now must not say otherwise
            if isinstance(e, KeyboardInterrupt):
                e.written = str(place)
            raise
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        # Libraries turn an exception from a signal handler into their own errors on the way up
        # (TensorFlow's tracing gave an AttributeError): after a signal, it is the interruption.
        raise_if_interrupted()
        if full := output.disk_full(e, out.resolve().parent):
            raise full from None
        raise
    report.location = str(place)  # where the output is: -o, or beside it if -o changed meanwhile
    return report
