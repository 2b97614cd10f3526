"""`tfwizard inspect` and `tfwizard convert`: the scriptable face of the engine.

Every failure a user can cause ends in one line on stderr and exit code 2; nothing
here prints a traceback for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfwizard", description="Inspect and convert TensorFlow models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{inspect,convert}")
    p = sub.add_parser("inspect", help="show format, inputs, outputs and ops of a model (no TensorFlow import)")
    p.add_argument("model", help="model file or SavedModel directory")
    p.add_argument("--tag", help="SavedModel tag set, comma-separated (default: serve)")
    p.add_argument("--signature", help="SavedModel signature (default: serving_default)")
    p.add_argument("--checkpoint", help="checkpoint prefix for a graph with variables (default: found beside it)")
    p.add_argument("--json", action="store_true", help="print JSON (schema tfwizard.inspect/1, see README)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "inspect":
            return _inspect(args)
    except UserError as e:
        print(f"tfwizard: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("tfwizard: interrupted", file=sys.stderr)
        return 130
    return 2


def _inspect(args) -> int:
    from .detect import detect
    from .inspect import inspect

    info = inspect(detect(args.model, checkpoint=args.checkpoint), tag=args.tag, signature=args.signature)
    if args.json:
        json.dump(info.to_json(), sys.stdout, indent=2)
        print()
    else:
        print(format_info(info))
    return 0


def format_info(info) -> str:
    """The human-readable inspect report."""
    lines = [f"model      {info.path}", f"format     {info.format_title}: {info.reason}"]
    if info.producer and info.producer.split()[-1] not in info.reason:
        lines.append(f"written by {info.producer}")
    if info.checkpoint:
        lines.append(f"checkpoint {info.checkpoint}")
    if info.tags:
        lines.append(f"tags       {' | '.join(','.join(t) for t in info.tags)}  (using {','.join(info.tag)})")
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
    return "\n".join(lines)
