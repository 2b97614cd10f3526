"""`tfwizard convert`: detect → inspect → prepare (TensorFlow, once) → per target: preflight, convert, verify.

Output goes to a temporary sibling of OUTDIR and is renamed into place only at the end,
so an interrupted or failed run leaves nothing half-written, and an existing OUTDIR is
replaced only with --force. One target failing does not stop the others.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from . import backends
from .detect import detect, glob_escape
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


def verification_text(v: dict | None) -> tuple[str, bool | None]:
    """A TargetResult's verification in one line, and whether it passed (None: not verified)."""
    if not v:
        return "not verified (--no-verify)", None
    if "skipped" in v:
        return f"not verified: {v['skipped']}", None
    if "error" in v:
        return f"verification failed: {v['error']}", False
    return (f"max abs diff {v['max_abs_diff']:.1e}, max rel diff {v['max_rel_diff']:.1e} "
            f"(tolerance {tolerance_text(v)}): {'PASS' if v['passed'] else 'FAIL'}", bool(v["passed"]))


def tolerance_text(v: dict) -> str:
    """'abs 1e-04' or, for quantized targets, 'rel 1e-02': which diff the tolerance bounds."""
    return f"{'rel' if v.get('tolerance_on') == 'max_rel_diff' else 'abs'} {v['tolerance']:.0e}"


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
    from .prepare import final_inputs, final_outputs, preprocessed_inputs

    detection = detect(options.model, checkpoint=options.checkpoint)
    info = inspect(detection, tag=options.tag, signature=options.signature)
    if info.code_risks and not options.trust_model:
        more = f" and {len(info.code_risks) - 1} more" if len(info.code_risks) > 1 else ""
        raise UserError(f"{info.path}: loading or running this model runs code or touches files it names ({info.code_risks[0]}{more}); "
                        "if you trust its source, pass --trust-model")
    preprocessed_inputs(final_inputs(info, options), options)
    final_outputs(info, options, graph=_parsed_graph(detection))
    for target in options.targets:
        check = getattr(backends.get(target), "check", None)
        if check:
            check(options, info)  # the target's own options, before anything is converted
    return detection, info


def _parsed_graph(detection):
    """The GraphDef detect() parsed for graph formats (None for SavedModels and Keras)."""
    from .detect import Format

    if detection.format is Format.METAGRAPH:
        return detection.parsed.graph_def
    if detection.format in (Format.GRAPHDEF, Format.GRAPHDEF_TEXT, Format.CHECKPOINT):
        return detection.parsed
    return None


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


def upstream_lines(options: ConversionOptions, info: ModelInfo) -> list[str]:
    """Each target's upstream command, or a shell comment saying why there is none (for --dryrun and the wizard)."""
    return [command or f"# {target}: no upstream command does this conversion directly (from a "
                       f"{info.format_title}, with these options); tfwizard goes through TensorFlow first"
            for target, command in upstream_commands(options, info).items()]


def check_output_dir(options: ConversionOptions, *, probe: bool = True) -> Path:
    """The output directory can be written (a probe directory is made and removed unless probe=False)."""
    out = Path(options.output_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out}: is a file, not a directory; choose another output directory")
    if out.exists() and any(out.iterdir()) and not options.force:
        raise UserError(f"-o {out}: already exists; pass --force to replace it, or choose another directory")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise UserError(f"-o {out}: the parent directory {parent} does not exist; create it first")
    if not probe:
        return out
    probe = parent / f".{out.name}.write-test"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as e:
        raise UserError(f"-o {out}: cannot write in {parent} ({e.strerror}); choose a writable directory") from None
    return out


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
    emit = _checking_interrupts(emit)
    for warning in info.warnings:
        emit("log", message=f"warning: {warning}")
    tmp = None
    try:
        with _signals_held():  # a signal now would leave a temp dir we don't know the name of yet
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.resolve().parent))
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the output should be as readable as a mkdir's
        if isolated:
            from .worker import run_worker

            report.targets = run_worker(options, tmp, emit)  # which makes the upstream commands itself
        else:
            report.targets = _convert_targets(detection, info, options, tmp, upstream_commands(options, info), emit)
        report.targets.sort(key=lambda r: options.targets.index(r.target))
        report.seconds = round(time.perf_counter() - started, 2)
        (tmp / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
        shutil.rmtree(tmp / ".tmp", ignore_errors=True)  # the worker's TMPDIR (engine.worker)
        raise_if_interrupted()
        with _signals_held():  # two renames: not to be split by a signal
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


def _convert_targets(detection, info, options, tmp: Path, commands, emit: Emit) -> list[TargetResult]:
    """TensorFlow's part: prepare the model once, then convert and verify each target into tmp/<target>."""
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
    results = []
    for target in options.targets:
        backend = backends.get(target)
        result = TargetResult(target, "ok", upstream_command=commands[target])
        results.append(result)
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
    return results


def _nodes_of(graph_def, op: str) -> list[str]:
    return [n.name for n in graph_def.node if n.op == op]


def _verify(backend, target_dir, prepared, options, feeds, reference, compare) -> dict:
    try:
        run = backend.load(target_dir, prepared)
        actual = run(feeds)
    except backends.VerifierUnavailable as e:  # e.g. no Node.js for TF.js: say so, don't fail
        return {"skipped": _one_line(e)}
    except Exception as e:
        return {"passed": False, "error": _one_line(e)}
    return compare(reference, actual, backend.tolerance(options), relative=options.quantization(backend.name) is not None)


# --- interruption -----------------------------------------------------------------------------------


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signum` says which. The CLI exits with 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_received: list[int] = []  # signals received inside interruptible(); sticky until it exits
_raised: list[int] = []  # the one signal raised as Interrupted
RECHECK_SECONDS = 0.05


@contextlib.contextmanager
def interruptible():
    """SIGINT and SIGTERM raise Interrupted in the main thread, once.

    Later signals are only recorded, so the cleanup the first one started runs to the end. The
    record is also checked at every progress event (and before the output is moved into place):
    a library that swallows KeyboardInterrupt (a bare `except:`) cannot make us carry on.
    While a module is being imported the exception is held back and retried every 50 ms: native
    extensions run Python code during their initialisation (onnx's nanobind enums), and an
    exception thrown through that C++ aborts the process, leaving the temporary output behind.
    """
    def handler(signum, frame):
        if signum != signal.SIGALRM:
            _received.append(signum)
        if not _received or _raised:
            return
        if _importing(frame):
            signal.setitimer(signal.ITIMER_REAL, RECHECK_SECONDS)
            return
        _raised.append(_received[0])
        raise Interrupted(_received[0])

    _drop_dangling_altstack()
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for s, h in previous.items():
            signal.signal(s, h)
        _received.clear()
        _raised.clear()


def _drop_dangling_altstack() -> None:
    """Disable the main thread's alternate signal stack if its memory is gone.

    OpenVINO 2026.4's CPU plugin can leave the thread an alternate stack it has already
    unmapped (seen after two Cores compiled and were freed). Python installs its handlers with
    SA_ONSTACK, so the next signal would segfault instead of interrupting. Linux only; the CLI
    does not need it (its worker, where OpenVINO runs, handles no signals).
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return
    import ctypes

    class StackT(ctypes.Structure):
        _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]

    SS_DISABLE = 2
    try:
        libc = ctypes.CDLL(None)
        current = StackT()
        if libc.sigaltstack(None, ctypes.byref(current)) != 0 or not current.ss_sp or current.ss_flags & SS_DISABLE:
            return
        with open("/proc/self/maps") as maps:
            for line in maps:
                low, high = (int(x, 16) for x in line.split()[0].split("-"))
                if low <= current.ss_sp < high:
                    return  # mapped: leave it (faulthandler's, or a library's that is still alive)
        libc.sigaltstack(ctypes.byref(StackT(None, SS_DISABLE, 0)), None)
    except (OSError, AttributeError, ValueError):
        pass


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def raise_if_interrupted() -> None:
    if _received:
        raise Interrupted(_received[0])


def _checking_interrupts(emit: Emit) -> Emit:
    def checked(event: str, **fields) -> None:
        raise_if_interrupted()
        emit(event, **fields)
    return checked


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT/SIGTERM for a few system calls; they are delivered when the block ends."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# --- resources ---------------------------------------------------------------------------------------


GIB = 1 << 30
MIB = 1 << 20
DISK_MARGIN = 64 * MIB  # beyond the estimate: report, logs, filesystem slack


def model_bytes(detection) -> int:
    """Bytes of every file that makes up the model: the file or directory, plus its checkpoint."""
    paths = [Path(detection.path)]
    if detection.checkpoint:
        prefix = Path(detection.checkpoint)
        paths += list(prefix.parent.glob(glob_escape(prefix.name) + ".*")) + [prefix]
    total = 0
    for p in paths:
        try:
            files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else []
            total += sum(f.stat().st_size for f in files)
        except OSError:
            continue  # unreadable parts were already reported by detect; the estimate is a floor
    return total


def disk_needed(size: int, targets: int) -> int:
    """Estimate for OUTDIR's filesystem: the frozen work copy plus each target about the model's size,
    with half again as margin (float16 ONNX keeps its float32 copy until the end, TF.js shards)."""
    return int(size * (targets + 1) * 1.5) + DISK_MARGIN


# Graph nodes cost memory beyond their bytes on disk (TensorFlow's Graph, grappler, the converters'
# copies): a 1,000,000-node, 34 MB graph had reached 6 GiB (6 KiB a node) when it was killed.
NODE_BYTES = 16 << 10


def memory_needed(size: int, nodes: int = 0) -> int:
    """The loaded model and its frozen copy, its nodes, plus TensorFlow itself (~1 GiB measured on import)."""
    return 2 * size + nodes * NODE_BYTES + GIB


def node_count(detection) -> int:
    """Nodes in the model's graphs and their function libraries (0 for Keras: layers are few)."""
    parsed = detection.parsed
    graphs = ([g.graph_def for g in parsed.meta_graphs] if hasattr(parsed, "meta_graphs")
              else [parsed.graph_def] if hasattr(parsed, "graph_def") else [parsed] if hasattr(parsed, "node") else [])
    return sum(len(g.node) + sum(len(f.node_def) for f in g.library.function) for g in graphs)


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else free physical pages; None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_space(size: int, targets: int, *, free_disk: int, free_memory: int | None, out: Path,
                reserve: int = 0, nodes: int = 0) -> None:
    """Refuse early when the output disk or the memory is clearly too small. Pure: inputs are given."""
    need = disk_needed(size, targets) + reserve
    if free_disk < need:
        raise UserError(f"-o {out}: not enough free disk space: the conversion needs about {_human(need)}, "
                        f"{_human(free_disk)} is free there; free some space or choose another output directory")
    if free_memory is not None and memory_needed(size, nodes) > free_memory:
        what = f"{_human(size)}, {nodes:,} nodes" if nodes else _human(size)
        raise UserError(f"the model ({what}) needs about {_human(memory_needed(size, nodes))} of memory to convert, "
                        f"{_human(free_memory)} is available; close other programs or use a machine with more memory")


def check_resources(detection, options: ConversionOptions, out: Path) -> None:
    """check_space() with this machine's numbers. TFWIZARD_DISK_RESERVE (bytes) keeps that much
    free on the output disk besides the estimate (default 0)."""
    try:
        reserve = int(os.environ.get("TFWIZARD_DISK_RESERVE", "0"))
    except ValueError:
        raise UserError("TFWIZARD_DISK_RESERVE must be a number of bytes") from None
    free_disk = shutil.disk_usage(out.resolve().parent).free
    check_space(model_bytes(detection), len(options.targets), free_disk=free_disk,
                free_memory=available_memory(), out=out, reserve=reserve, nodes=node_count(detection))


def _human(n: int) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1024:.0f} KiB"


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
