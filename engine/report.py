"""What a conversion produced: per-target results, the report (report.json), exit codes, and the
text people read (the convert summary, the inspect report). No TensorFlow, no UI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from .text import human_size

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_MISMATCH = 0, 1, 2, 3
EXIT_WORDS = {EXIT_OK: "done", EXIT_FAILED: "some targets failed", EXIT_BAD_INPUT: "bad input",
              EXIT_MISMATCH: "verification out of tolerance"}
REPORT_SCHEMA = "tfwizard.report/1"


@dataclass
class TargetResult:
    target: str
    status: str  # "ok", "failed" (conversion error), "unsupported" (preflight), "mismatch" (verification)
    message: str = ""
    files: dict[str, int] = field(default_factory=dict)  # relative path → bytes
    seconds: float = 0.0
    upstream_command: str | None = None
    # {max_abs_diff, max_rel_diff, atol, rtol, atol_scaled, tolerance, tolerance_on, passed, outputs}, {error} or {skipped}
    verification: dict | None = None
    strategy: str | None = None  # the ladder rung that produced the file ("frozen graph", ...: engine.ladder)
    attempts: list = field(default_factory=list)  # [{strategy, error}]: the rungs tried before or instead
    # --benchmark: {runtime, threads, median_ms, p90_ms, runs, warmup, tensorflow: {...}} or {runtime, threads, error}
    benchmark: dict | None = None


def verification_text(v: dict | None) -> tuple[str, bool | None]:
    """A TargetResult's verification in one line, and whether it passed (None: not verified)."""
    if not v:
        return "not verified (--no-verify)", None
    if "skipped" in v:
        return f"not verified: {v['skipped']}", None
    if "error" in v:
        return f"verification failed: {v['error']}", False
    text = f"max abs diff {v['max_abs_diff']:.1e}, max rel diff {v['max_rel_diff']:.1e} (tolerance {tolerance_text(v)})"
    ranked = [o for o in v.get("outputs", {}).values() if "top1_agreement" in o]
    if ranked and v.get("sample_inputs"):  # on random inputs the ranking means little: said for real ones
        o = ranked[0]
        text += f", top-1 {o['top1_agreement']:.0%} / top-5 {o['top5_agreement']:.0%} of {o['samples']} samples"
    bad = {name: o for name, o in v.get("outputs", {}).items() if o.get("out_of_bound")}
    if bad:
        name, o = max(bad.items(), key=lambda kv: kv[1]["out_of_bound"])
        text += f", {o['out_of_bound']:.2%} of {name!r} out of bound, worst at [{','.join(map(str, o['worst_index']))}]"
    return f"{text}: {'PASS' if v['passed'] else 'FAIL'}", bool(v["passed"])


def tolerance_text(v: dict) -> str:
    """'atol 1e-04 + rtol 1e-04' or, for quantized targets, 'rel 1e-02 + rtol 1e-02' (atol scaled by the
    output's largest magnitude)."""
    rel = v.get("tolerance_on") == "max_rel_diff"
    if "rtol" not in v:  # a report from before the allclose rule
        return f"{'rel' if rel else 'abs'} {v['tolerance']:.0e}"
    return f"{'rel' if rel else 'atol'} {v['tolerance']:.0e} + rtol {v['rtol']:.0e}"


@dataclass
class Report:
    model: dict
    command: str
    targets: list[TargetResult]
    seconds: float = 0.0
    benchmark: dict | None = None  # --benchmark: engine.benchmark.block()
    # The converted models' inputs (overrides and --batch applied; -1 dynamic) and outputs: what the
    # loading snippets feed (engine.backends: each backend's snippet()).
    interface: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if any(t.status in ("failed", "unsupported") for t in self.targets):
            return EXIT_FAILED
        if any(t.status == "mismatch" for t in self.targets):
            return EXIT_MISMATCH
        return EXIT_OK

    def to_json(self) -> dict:
        return {"schema": REPORT_SCHEMA, **asdict(self), "exit_code": self.exit_code}


def one_line(e: BaseException) -> str:
    """An exception as one line for a report or an error event: 'Type: first line of the message'."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__


def format_report(report, output_dir: str) -> str:
    lines = []
    for t in report.targets:
        size = sum(t.files.values())
        check = verification_text(t.verification)[0]
        if t.status in ("failed", "unsupported"):
            lines.append(f"{t.target:<9} {t.status.upper()}: {t.message}")
        else:
            via = f"  [{t.strategy}]" if t.strategy and t.strategy != "frozen graph" else ""  # a later rung (engine.ladder)
            lines.append(f"{t.target:<9} {human_size(size):>10}  {t.seconds:6.1f} s  {check}{via}")
    if report.benchmark:
        from .benchmark import table

        lines += table(report.benchmark)
    status = EXIT_WORDS[report.exit_code]
    lines.append(f"{status} in {report.seconds:.1f} s; report: {Path(output_dir) / 'report.json'}")
    return "\n".join(lines)


def format_info(info) -> str:
    """The human-readable inspect report."""
    lines = [f"model      {info.path}", f"format     {info.format_title}: {info.reason}"]
    if info.producer and info.producer.split()[-1] not in info.reason:
        lines.append(f"written by {info.producer}")
    if info.checkpoint:
        lines.append(f"checkpoint {info.checkpoint}")
    if info.tags:
        lines.append(f"tags       {' | '.join(','.join(t) or '(none)' for t in info.tags)}  (using {','.join(info.tag) or '(none)'})")
    if info.signatures:
        lines.append(f"signatures {', '.join(info.signatures)}  (using {info.signature})")
    for title, tensors in (("inputs", info.inputs), ("outputs", info.outputs)):
        lines.append(f"{title:<10} {'(none found)' if not tensors else ''}".rstrip())
        width = max((len(t.name) for t in tensors), default=0)
        for t in tensors:
            shape = "shape unknown" if t.shape is None else "[" + ", ".join(map(str, t.shape)) + "]"
            row = f"  {t.name:<{width}}  {t.dtype or '?':<8} {shape}"
            if t.tensor and t.tensor not in (t.name, f"{t.name}:0"):
                row += f"  ({t.tensor})"
            if t.note:
                row += f"  ! {t.note}"
            lines.append(row)
    kind = "layers" if info.op_kind == "keras_layer" else "ops"
    total = sum(info.ops.values())
    lines.append(f"{kind:<10} {total} in {len(info.ops)} types: " + ", ".join(f"{op}×{n}" for op, n in info.ops.items()))
    lines += [f"warning    {w}" for w in info.warnings]
    if info.code_risks:
        lines.append("code       runs code or touches files when loaded or run; convert refuses it without --trust-model "
                     "(only for models you trust):")
        lines += [f"  ! {risk}" for risk in info.code_risks]
    if info.custom_classes:
        lines.append(f"custom     classes {', '.join(info.custom_classes)}: Keras needs their code to load the model; "
                     "convert with --custom-objects FILE.py (the file that defines them) and --trust-model")
    if info.custom_ops:
        lines.append(f"custom     ops {', '.join(info.custom_ops)}: not in TensorFlow; convert with --load-op-library "
                     "LIB.so (the library that registers them) and --trust-model; no target converts them (--output can "
                     "cut them off)")
    return "\n".join(lines)
