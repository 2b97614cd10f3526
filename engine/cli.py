"""`tfwizard inspect` and `tfwizard convert`: the scriptable face of the engine.

Every failure a user can cause ends in one line on stderr and exit code 2; nothing
here prints a traceback for bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from .errors import UserError
from .report import format_info, format_report
from .user_code import parse_custom_objects
from .text import printable, printable_lines
from .options import (DEFAULT_BENCHMARK_RUNS, PRESETS, ConversionOptions, parse_batch, parse_floats, parse_freeze,
                      parse_input, parse_quantize, parse_sample_input, parse_targets, strip_port)


class _Parser(argparse.ArgumentParser):
    """argparse prints the whole usage before its error; we keep to one line (exit 2 all the same)."""

    def error(self, message):
        raise UserError(f"{message}; see '{self.prog} --help'")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tfwizard", description="Inspect and convert TensorFlow models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{inspect,convert}")
    p = sub.add_parser("inspect", help="show format, inputs, outputs and ops of a model (no TensorFlow import)")
    p.add_argument("model", help="model file or SavedModel directory")
    p.add_argument("--tag", help="SavedModel tag set, comma-separated (default: serve)")
    p.add_argument("--signature", help="SavedModel signature (default: serving_default)")
    p.add_argument("--checkpoint", help="checkpoint prefix for a graph with variables (default: found beside it)")
    p.add_argument("--json", action="store_true", help="print JSON (schema tfwizard.inspect/1, see README)")
    p.add_argument("--deep", action="store_true",
                   help="freeze the model with TensorFlow as convert would and report the frozen graph: ops, "
                        "each target's verdict, output shapes, weight sizes (JSON schema tfwizard.deep/1; cached)")
    p.add_argument("--trust-model", action="store_true",
                   help="with --deep: load a model that runs code when loaded (as convert --trust-model)")

    from .backends import TARGETS, all_backends, get

    onnx, tfjs = get("onnx"), get("tfjs")
    quantize = ", ".join(f"{b.name}:{'|'.join(b.quantizations)}" + ("[:node*,...]" if b.quantize_nodes else "")
                         for b in all_backends() if b.quantizations)
    c = sub.add_parser("convert", help=f"convert to {', '.join(TARGETS[:-1])} and/or {TARGETS[-1]}, then verify against TensorFlow")
    c.add_argument("model", help="model file or SavedModel directory")
    c.add_argument("--to", required=True, help=f"targets, comma-separated: {','.join(TARGETS)}")
    c.add_argument("-o", "--output-dir", required=True, help="output directory (OUTDIR/<target>/..., OUTDIR/report.json)")
    c.add_argument("--input", action="append", default=[], metavar="NAME[d1,d2,...]",
                   help="input shape override; -1 or ? keeps a dim dynamic (repeatable)")
    c.add_argument("--output", action="append", default=[], metavar="NAME", help="cut the graph at this output (repeatable)")
    c.add_argument("--freeze", action="append", default=[], metavar="NAME=VALUE",
                   help="bake this input in as a constant, e.g. keep_prob=1.0 (repeatable)")
    c.add_argument("--batch", type=parse_batch, help="set the batch (first) dimension of every input")
    c.add_argument("--tag", help="SavedModel tag set, comma-separated")
    c.add_argument("--signature", help="SavedModel signature")
    c.add_argument("--checkpoint", help="checkpoint prefix for a graph with variables")
    c.add_argument("--mean-values", help="subtract per channel, e.g. '[127.5,127.5,127.5]'")
    c.add_argument("--scale-values", help="divide per channel after the mean, e.g. '[127.5,127.5,127.5]'")
    c.add_argument("--scale", help="one scale for every channel (same as --scale-values N)")
    c.add_argument("--reverse-input-channels", action="store_true", help="RGB<->BGR before mean/scale")
    c.add_argument("--preset", choices=sorted(PRESETS), help="mean/scale of a known model family")
    c.add_argument("--quantize", action="append", default=[], metavar="TARGET:MODE", help=quantize)
    c.add_argument("--opset", type=int, help=f"ONNX opset, {onnx.min_opset} to {onnx.max_opset} (default {onnx.default_opset})")
    c.add_argument("--inputs-as-nchw", default="", help="ONNX: these inputs take NCHW (comma-separated)")
    c.add_argument("--tfjs-format", choices=list(tfjs.formats), default="graph", help="TF.js model type")
    c.add_argument("--keras-format", choices=["h5", "keras"], default="h5",
                   help="keras target: model.h5 (HDF5, default) or model.keras (Keras v3)")
    c.add_argument("--weight-shard-size-bytes", type=int, help=f"TF.js weight shard size (default {tfjs.default_shard_bytes})")
    c.add_argument("--split-weights-by-layer", action="store_true", help="TF.js: one weight group per layer")
    c.add_argument("--keep-debug-ops", action="store_true", help="TF.js: keep Print/Assert ops (stripped by default)")
    c.add_argument("--control-flow-v2", action="store_true", help="TF.js: keep control flow v2 ops")
    c.add_argument("--use-structured-outputs-names", action="store_true", help="TF.js: outputs keyed by name")
    c.add_argument("--metadata", action="append", default=[], metavar="KEY:FILE.json", help="TF.js user metadata")
    c.add_argument("--tensorboard-logdir", metavar="DIR",
                   help="also write the original graph and the prepared frozen graph the targets convert from as "
                        "TensorBoard graph events in DIR/original and DIR/prepared (tensorboard --logdir DIR)")
    c.add_argument("--trust-model", action="store_true",
                   help="load Keras models with Lambda layers or custom objects, which run code (see inspect); "
                        "needed for --custom-objects and --load-op-library")
    c.add_argument("--custom-objects", action="append", default=[], metavar="PATH.py|MODULE:ATTR",
                   help="Keras custom classes and functions: a .py file (its public classes and functions) or an "
                        "import path; runs that code, so only with --trust-model (repeatable)")
    c.add_argument("--load-op-library", action="append", default=[], metavar="PATH.so",
                   help="a TensorFlow custom op library, loaded with tf.load_op_library before the model; native "
                        "code, so only with --trust-model (repeatable)")
    c.add_argument("--sample-input", action="append", default=[], metavar="[NAME=]FILE",
                   help="verify on this input: .npy/.npz as they are, .png/.jpg resized to the input (repeatable)")
    c.add_argument("--benchmark", action="store_true",
                   help="after verification, time each converted model in its runtime against TensorFlow (batch 1)")
    c.add_argument("--benchmark-runs", type=int, default=DEFAULT_BENCHMARK_RUNS, metavar="N",
                   help=f"timed runs per runtime, after a warm-up (default {DEFAULT_BENCHMARK_RUNS})")
    c.add_argument("--no-verify", action="store_true", help="skip the numeric check against TensorFlow")
    c.add_argument("--force", action="store_true", help="replace an existing output directory")
    c.add_argument("--dryrun", action="store_true", help="print this command and the upstream commands; write nothing")
    c.add_argument("--report", help="also write report.json here")
    c.add_argument("--progress", choices=["text", "json"],
                   help="progress as text on stderr (default; TFWIZARD_PROGRESS=json changes it) or JSON lines on stdout")
    return parser


def options_from_args(args) -> ConversionOptions:
    """argparse namespace → the one options object, which checks the values (engine.options)."""
    if args.scale and args.scale_values:
        raise UserError("--scale and --scale-values both given; use one")
    scale = args.scale_values or args.scale
    return ConversionOptions(
        model=args.model, targets=parse_targets(args.to), output_dir=args.output_dir,
        inputs=tuple(parse_input(i) for i in args.input), outputs=tuple(strip_port(o) for o in args.output),
        freeze=tuple(parse_freeze(f) for f in args.freeze),
        batch=args.batch, tag=args.tag, signature=args.signature, checkpoint=args.checkpoint,
        mean_values=parse_floats(args.mean_values, "--mean-values") if args.mean_values else None,
        scale_values=parse_floats(scale, "--scale-values") if scale else None,
        reverse_input_channels=args.reverse_input_channels, preset=args.preset,
        quantize=parse_quantize(args.quantize), opset=args.opset,
        inputs_as_nchw=tuple(strip_port(n) for n in args.inputs_as_nchw.split(",") if n.strip()),
        tfjs_format=args.tfjs_format, keras_format=args.keras_format, weight_shard_size_bytes=args.weight_shard_size_bytes,
        split_weights_by_layer=args.split_weights_by_layer, strip_debug_ops=not args.keep_debug_ops,
        control_flow_v2=args.control_flow_v2, use_structured_outputs_names=args.use_structured_outputs_names,
        metadata=tuple(args.metadata), tensorboard_logdir=args.tensorboard_logdir, trust_model=args.trust_model,
        custom_objects=tuple(parse_custom_objects(c) for c in args.custom_objects),
        op_libraries=tuple(lib.strip() for lib in args.load_op_library),
        sample_inputs=tuple(parse_sample_input(t) for t in args.sample_input), benchmark=args.benchmark,
        benchmark_runs=args.benchmark_runs, verify=not args.no_verify, force=args.force,
        report=args.report, progress=args.progress or "text",
    )


def main(argv: list[str] | None = None) -> int:
    # A file name that is not valid UTF-8 reaches us as surrogate escapes; print it back as the
    # same bytes rather than fail (stdout is 'strict' under most UTF-8 locales).
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    try:
        args = build_parser().parse_args(argv)
        if args.command == "inspect":
            return _inspect(args)
        if args.command == "convert":
            return _convert(args)
    except UserError as e:
        print(f"tfwizard: error: {printable(e)}", file=sys.stderr)  # names from the model are in it
        return e.exit_code
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        written = getattr(e, "written", None)  # the signal came after the output was in place
        print(f"tfwizard: interrupted ({signal.Signals(signum).name}); "
              + (f"the output was already complete in {written}" if written else "nothing was written"), file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:  # `tfwizard inspect M | head`: the reader left; so do we, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 128 + signal.SIGPIPE
    except Exception as e:  # a bug of ours or an upstream crash: one line, not a traceback
        if os.environ.get("TFWIZARD_DEBUG"):
            raise
        print(f"tfwizard: internal error: {type(e).__name__}: {printable(str(e).strip()[:300])}; "
              "rerun with TFWIZARD_DEBUG=1 for details and please report it", file=sys.stderr)
        return 1
    return 2


def _inspect(args) -> int:
    from .detect import detect
    from .inspect import inspect

    if args.deep:
        return _inspect_deep(args)
    if args.trust_model:
        raise UserError("--trust-model goes with --deep (plain inspect loads nothing); add --deep or drop it")
    info = inspect(detect(args.model, checkpoint=args.checkpoint), tag=args.tag, signature=args.signature)
    if args.json:
        json.dump({**info.to_json(), **targets_json()}, sys.stdout, indent=2)
        print()
    else:
        print(printable_lines(format_info(info)))
        print(format_targets())
    return 0


def _inspect_deep(args) -> int:
    from .availability import unavailable
    from .deep import deep_inspect, deep_options, format_deep
    from .signals import interruptible

    options = deep_options(args.model, tag=args.tag, signature=args.signature, checkpoint=args.checkpoint,
                           trust_model=args.trust_model)
    with interruptible():  # SIGTERM (the wizard going back) kills the worker and removes its files
        result = deep_inspect(options, _text_emitter if not args.json else lambda event, **fields: None)
    if args.json:
        json.dump({**result, **targets_json()}, sys.stdout, indent=2)
        print()
    else:
        print(printable_lines(format_deep(result, unavailable())))
    return 0


def _convert(args) -> int:
    from .convert import convert
    from .plan import check_output_dir, plan, upstream_lines
    from .signals import interruptible

    options = options_from_args(args)
    if args.dryrun:
        _, info = plan(options)
        check_output_dir(options, probe=False)  # a dry run writes nothing, not even a probe
        print(options.command())  # shell_join: $'...' for names with control characters
        for line in upstream_lines(options, info):
            print(printable(line))  # the '# target: ...' comments name the model
        return 0
    # The wizard sets TFWIZARD_PROGRESS=json so the command it runs is exactly the one it shows;
    # it changes only how progress is printed, never what the command converts.
    progress = args.progress or os.environ.get("TFWIZARD_PROGRESS") or "text"
    emit = _json_emitter if progress == "json" else _text_emitter
    with interruptible():
        report = convert(options, emit, isolated=True)  # TensorFlow in a worker process we can kill
    if progress == "text":
        print(printable_lines(format_report(report, getattr(report, "location", options.output_dir))))
    return report.exit_code


def _json_emitter(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}, default=str), flush=True)


def _text_emitter(event: str, **fields) -> None:
    target = f"[{fields['target']}] " if fields.get("target") else ""
    if event in ("stage", "log") or (event == "target" and fields.get("status") != "ok"):
        print(printable(f"tfwizard: {target}{fields.get('message') or fields.get('status')}"), file=sys.stderr, flush=True)


def targets_json() -> dict:
    """inspect --json's view of this install: the targets it can convert to, and why not the others."""
    from .availability import available, unavailable

    return {"available_targets": available(), "unavailable": unavailable()}


def format_targets() -> str:
    """inspect's line on this install's targets (a missing extra is named with its fix)."""
    from .availability import available, unavailable

    lines = [f"targets    {', '.join(available()) or '(none installed)'}"]
    lines += [f"  ! {reason}" for reason in unavailable().values()]
    return "\n".join(lines)
