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
from .text import printable, printable_lines
from .options import (DEFAULT_SHARD_BYTES, PRESETS, ConversionOptions, parse_floats, parse_freeze, parse_input,
                      parse_quantize, parse_targets, strip_port)


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

    c = sub.add_parser("convert", help="convert to onnx, tfjs, openvino and/or tflite, then verify against TensorFlow")
    c.add_argument("model", help="model file or SavedModel directory")
    c.add_argument("--to", required=True, help="targets, comma-separated: onnx,tfjs,openvino,tflite,keras "
                   "(keras: Keras and TF.js layers model inputs only)")
    c.add_argument("-o", "--output-dir", required=True, help="output directory (OUTDIR/<target>/..., OUTDIR/report.json)")
    c.add_argument("--input", action="append", default=[], metavar="NAME[d1,d2,...]",
                   help="input shape override; -1 or ? keeps a dim dynamic (repeatable)")
    c.add_argument("--output", action="append", default=[], metavar="NAME", help="cut the graph at this output (repeatable)")
    c.add_argument("--freeze", action="append", default=[], metavar="NAME=VALUE",
                   help="bake this input in as a constant, e.g. keep_prob=1.0 (repeatable)")
    c.add_argument("--batch", type=int, help="set the batch (first) dimension of every input")
    c.add_argument("--tag", help="SavedModel tag set, comma-separated")
    c.add_argument("--signature", help="SavedModel signature")
    c.add_argument("--checkpoint", help="checkpoint prefix for a graph with variables")
    c.add_argument("--mean-values", help="subtract per channel, e.g. '[127.5,127.5,127.5]'")
    c.add_argument("--scale-values", help="divide per channel after the mean, e.g. '[127.5,127.5,127.5]'")
    c.add_argument("--scale", help="one scale for every channel (same as --scale-values N)")
    c.add_argument("--reverse-input-channels", action="store_true", help="RGB<->BGR before mean/scale")
    c.add_argument("--preset", choices=sorted(PRESETS), help="mean/scale of a known model family")
    c.add_argument("--quantize", action="append", default=[], metavar="TARGET:MODE",
                   help="tfjs:float16|uint8|uint16[:node*,...], openvino:fp16, onnx:float16|int8, tflite:dynamic|float16")
    c.add_argument("--opset", type=int, help="ONNX opset (default 15)")
    c.add_argument("--inputs-as-nchw", default="", help="ONNX: these inputs take NCHW (comma-separated)")
    c.add_argument("--tfjs-format", choices=["graph", "layers"], default="graph", help="TF.js model type")
    c.add_argument("--keras-format", choices=["h5", "keras"], default="h5",
                   help="keras target: model.h5 (HDF5, default) or model.keras (Keras v3)")
    c.add_argument("--weight-shard-size-bytes", type=int, default=DEFAULT_SHARD_BYTES, help="TF.js weight shard size")
    c.add_argument("--split-weights-by-layer", action="store_true", help="TF.js: one weight group per layer")
    c.add_argument("--keep-debug-ops", action="store_true", help="TF.js: keep Print/Assert ops (stripped by default)")
    c.add_argument("--control-flow-v2", action="store_true", help="TF.js: keep control flow v2 ops")
    c.add_argument("--use-structured-outputs-names", action="store_true", help="TF.js: outputs keyed by name")
    c.add_argument("--metadata", action="append", default=[], metavar="KEY:FILE.json", help="TF.js user metadata")
    c.add_argument("--tensorboard-logdir", metavar="DIR",
                   help="also write the original graph and the prepared frozen graph the targets convert from as "
                        "TensorBoard graph events in DIR/original and DIR/prepared (tensorboard --logdir DIR)")
    c.add_argument("--trust-model", action="store_true",
                   help="load Keras models with Lambda layers or custom objects, which run code (see inspect)")
    c.add_argument("--no-verify", action="store_true", help="skip the numeric check against TensorFlow")
    c.add_argument("--force", action="store_true", help="replace an existing output directory")
    c.add_argument("--dryrun", action="store_true", help="print this command and the upstream commands; write nothing")
    c.add_argument("--report", help="also write report.json here")
    c.add_argument("--progress", choices=["text", "json"],
                   help="progress as text on stderr (default; TFWIZARD_PROGRESS=json changes it) or JSON lines on stdout")
    return parser


def options_from_args(args) -> ConversionOptions:
    """argparse namespace → the one options object (validating every value)."""
    if args.batch is not None and args.batch <= 0:
        raise UserError(f"--batch {args.batch}: not a positive integer; pass the batch size, e.g. --batch 1")
    if args.scale and args.scale_values:
        raise UserError("--scale and --scale-values both given; use one")
    if args.weight_shard_size_bytes <= 0:
        raise UserError("--weight-shard-size-bytes must be positive; e.g. 4194304 (4 MiB, the default)")
    scale = args.scale_values or args.scale
    targets = parse_targets(args.to)
    quantize = tuple(parse_quantize(q) for q in args.quantize)
    quantized = [q.partition(":")[0] for q in quantize]
    for q, target in zip(quantize, quantized):
        if quantized.count(target) > 1:
            raise UserError(f"--quantize given {quantized.count(target)} times for {target}; keep one mode")
        if target not in targets:
            raise UserError(f"--quantize {q}: {target} is not converted (--to {args.to}); "
                            f"add it to --to or drop the flag")
    return ConversionOptions(
        model=args.model, targets=targets, output_dir=args.output_dir,
        inputs=tuple(parse_input(i) for i in args.input), outputs=tuple(strip_port(o) for o in args.output),
        freeze=tuple(parse_freeze(f) for f in args.freeze),
        batch=args.batch, tag=args.tag, signature=args.signature, checkpoint=args.checkpoint,
        mean_values=parse_floats(args.mean_values, "--mean-values") if args.mean_values else None,
        scale_values=parse_floats(scale, "--scale-values") if scale else None,
        reverse_input_channels=args.reverse_input_channels, preset=args.preset,
        quantize=quantize, opset=args.opset,
        inputs_as_nchw=tuple(strip_port(n) for n in args.inputs_as_nchw.split(",") if n.strip()),
        tfjs_format=args.tfjs_format, keras_format=args.keras_format, weight_shard_size_bytes=args.weight_shard_size_bytes,
        split_weights_by_layer=args.split_weights_by_layer, strip_debug_ops=not args.keep_debug_ops,
        control_flow_v2=args.control_flow_v2, use_structured_outputs_names=args.use_structured_outputs_names,
        metadata=tuple(args.metadata), tensorboard_logdir=args.tensorboard_logdir, trust_model=args.trust_model, verify=not args.no_verify, force=args.force,
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

    info = inspect(detect(args.model, checkpoint=args.checkpoint), tag=args.tag, signature=args.signature)
    if args.json:
        json.dump({**info.to_json(), **targets_json()}, sys.stdout, indent=2)
        print()
    else:
        print(printable_lines(format_info(info)))
        print(format_targets())
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
