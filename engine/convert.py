"""`tfwizard convert`: detect → inspect → prepare (TensorFlow, once) → per target: preflight, convert, verify.

Output goes to a temporary sibling of OUTDIR and is renamed into place only at the end,
so an interrupted or failed run leaves nothing half-written, and an existing OUTDIR is
replaced only with --force. One target failing does not stop the others.
"""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from . import backends
from .detect import detect
from .errors import UserError
from .inspect import ModelInfo, inspect
from .options import ConversionOptions

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_MISMATCH = 0, 1, 2, 3
REPORT_SCHEMA = "tfwizard.report/1"

Emit = Callable[..., None]  # emit(event, **fields): progress for people or a UI


@dataclass
class TargetResult:
    target: str
    status: str  # "ok", "failed" (conversion error), "unsupported" (preflight), "mismatch" (verification)
    message: str = ""
    files: dict[str, int] = field(default_factory=dict)  # relative path → bytes
    seconds: float = 0.0
    upstream_command: str | None = None
    verification: dict | None = None  # {max_abs_diff, max_rel_diff, tolerance, tolerance_on, passed, outputs} or {skipped}


@dataclass
class Report:
    model: dict
    command: str
    targets: list[TargetResult]
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        if any(t.status in ("failed", "unsupported") for t in self.targets):
            return EXIT_FAILED
        if any(t.status == "mismatch" for t in self.targets):
            return EXIT_MISMATCH
        return EXIT_OK

    def to_json(self) -> dict:
        return {"schema": REPORT_SCHEMA, **asdict(self), "exit_code": self.exit_code}


def plan(options: ConversionOptions) -> tuple[object, ModelInfo]:
    """Everything that can be checked without TensorFlow; raises UserError on bad input."""
    from .prepare import final_inputs, final_outputs

    detection = detect(options.model, checkpoint=options.checkpoint)
    info = inspect(detection, tag=options.tag, signature=options.signature)
    final_inputs(info, options)
    final_outputs(info, options)
    if options.tfjs_format == "layers" and "tfjs" in options.targets and info.op_kind != "keras_layer":
        raise UserError("--tfjs-format layers needs a Keras model (.h5/.keras); use the default graph format")
    return detection, info


def upstream_commands(options: ConversionOptions, info: ModelInfo) -> dict[str, str | None]:
    """Each target's upstream command as one shell line (None: no upstream tool does this directly)."""
    result = {}
    for target in options.targets:
        backend = backends.get(target)
        argv = backend.upstream_command(options, info)
        line = shlex.join(argv) if argv else None
        if line and not getattr(backend, "upstream_creates_output_dir", True):
            line = f"mkdir -p {shlex.quote(str(Path(options.output_dir, target)))} && {line}"
        result[target] = line
    return result


def check_output_dir(options: ConversionOptions) -> Path:
    out = Path(options.output_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out}: is a file, not a directory; choose another output directory")
    if out.exists() and any(out.iterdir()) and not options.force:
        raise UserError(f"-o {out}: already exists; pass --force to replace it, or choose another directory")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise UserError(f"-o {out}: the parent directory {parent} does not exist; create it first")
    probe = parent / f".{out.name}.write-test"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as e:
        raise UserError(f"-o {out}: cannot write in {parent} ({e.strerror}); choose a writable directory") from None
    return out


def convert(options: ConversionOptions, emit: Emit) -> Report:
    started = time.perf_counter()
    detection, info = plan(options)
    out = check_output_dir(options)
    commands = upstream_commands(options, info)
    report = Report(
        model={"path": info.path, "format": info.format, "reason": info.reason,
               "inputs": [asdict(i) for i in info.inputs], "outputs": [asdict(o) for o in info.outputs]},
        command=options.command(), targets=[],
    )
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.resolve().parent))
    try:
        _convert_targets(detection, info, options, tmp, commands, report, emit)
        report.targets.sort(key=lambda r: options.targets.index(r.target))
        report.seconds = round(time.perf_counter() - started, 2)
        (tmp / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if options.report:
        Path(options.report).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    emit("done", exit_code=report.exit_code, output_dir=str(out), seconds=report.seconds)
    return report


def _convert_targets(detection, info, options, tmp: Path, commands, report: Report, emit: Emit) -> None:
    from .inspect import graph_op_inventory
    from .prepare import import_tensorflow, prepare, run_reference
    from .verify import compare, make_feeds

    emit("stage", stage="import", message="importing TensorFlow")
    work = tmp / ".work"
    work.mkdir()
    tf = import_tensorflow()
    emit("stage", stage="load", message="loading and freezing the model")
    prepared = prepare(detection, info, options, work)
    # Preflight on what will really be converted: the frozen graph (training branches, variables
    # and Keras layers are gone; their TF ops are what the targets see).
    main_ops = Counter(n.op for n in prepared.graph_def.node)
    body_ops = {op: n for op, n in graph_op_inventory(prepared.graph_def).items() if op not in main_ops}
    feeds = make_feeds(prepared.inputs, raw_pixels=prepared.has_preprocessing) if options.verify else {}
    reference = run_reference(tf, prepared, feeds) if options.verify else {}
    for target in options.targets:
        backend = backends.get(target)
        result = TargetResult(target, "ok", upstream_command=commands[target])
        report.targets.append(result)
        blocked = backend.preflight(dict(main_ops))
        # Ops only inside control-flow bodies are often pruned when a converter lowers the
        # control flow (cond_v2 leaves gradient plumbing there); let the converter decide.
        maybe = backend.preflight(body_ops)
        if maybe:
            emit("log", target=target, message=f"note: {', '.join(sorted(maybe))} inside control-flow bodies may "
                 "not convert; trying anyway")
        if blocked:
            result.status = "unsupported"
            result.message = "unsupported ops: " + "; ".join(
                f"{op} at {', '.join(_nodes_of(prepared.graph_def, op)[:3]) or 'a function body'} ({why})"
                for op, why in sorted(blocked.items()))
            emit("target", target=target, status="unsupported", message=result.message)
            continue
        target_dir = tmp / target
        target_dir.mkdir()
        emit("stage", stage="convert", target=target, message=f"converting to {backend.title}")
        t0 = time.perf_counter()
        try:
            backend.convert(prepared, options, target_dir, lambda msg, t=target: emit("log", target=t, message=msg))
        except UserError:
            raise
        except Exception as e:  # a converter's own failure: report it, go on with the other targets
            result.status, result.message = "failed", _one_line(e)
            shutil.rmtree(target_dir, ignore_errors=True)
            emit("target", target=target, status="failed", message=result.message)
            continue
        result.seconds = round(time.perf_counter() - t0, 2)
        result.files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(target_dir.rglob("*")) if p.is_file()}
        if options.verify:
            emit("stage", stage="verify", target=target, message="running it and comparing with TensorFlow")
            result.verification = _verify(backend, target_dir, prepared, options, feeds, reference, compare)
            if result.verification.get("passed") is False:
                result.status = "mismatch"
        emit("target", target=target, status=result.status, files=result.files, seconds=result.seconds,
             verification=result.verification, message=result.message)
    shutil.rmtree(work, ignore_errors=True)


def _nodes_of(graph_def, op: str) -> list[str]:
    return [n.name for n in graph_def.node if n.op == op]


def _verify(backend, target_dir, prepared, options, feeds, reference, compare) -> dict:
    try:
        run = backend.load(target_dir, prepared)
        actual = run(feeds)
    except Exception as e:
        if type(e).__name__ == "VerifierUnavailable":  # e.g. no Node.js for TF.js: say so, don't fail
            return {"skipped": _one_line(e)}
        return {"passed": False, "error": _one_line(e)}
    return compare(reference, actual, backend.tolerance(options), relative=options.quantization(backend.name) is not None)


def _move_into_place(tmp: Path, out: Path) -> None:
    """Replace `out` with `tmp` (renames on one filesystem; the old output is removed last)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{int(time.time())}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__
