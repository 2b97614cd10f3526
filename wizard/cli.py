"""`tfwizard`: the interactive wizard, or one of the scriptable commands.

    tfwizard [MODEL] [--dryrun]           full-screen wizard (Textual)
    tfwizard --plain [MODEL] [--dryrun] [--yes]   the same steps as plain prompts
    tfwizard demo                         a guided conversion of a bundled sample
    tfwizard view MODEL                   open the model in Netron (127.0.0.1 only)
    tfwizard inspect|convert ...          the engine's commands (see --help of each)
    tfwizard --version                    version, and which targets are installed

Start-up matters: nothing here imports TensorFlow, and the UI modules are imported
only for the face that is used.
"""

from __future__ import annotations

import argparse
import sys

ENGINE_COMMANDS = {"inspect", "convert"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("--version", "-V"):
        from engine.availability import version_text

        print(version_text())
        return 0
    if argv and argv[0] in ENGINE_COMMANDS:
        from engine.cli import main as engine_main

        return engine_main(argv)
    if argv and argv[0] == "demo":
        from .demo import main as demo_main

        return demo_main(argv[1:])
    if argv and argv[0] == "view":
        from .view import main as view_main

        return view_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.plain:
        from .plain import run_plain

        return run_plain(args.model, dryrun=args.dryrun, yes=args.yes)
    from .app import run_app

    return run_app(args.model, dryrun=args.dryrun)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfwizard",
        description="Convert a TensorFlow model to ONNX, TF.js, OpenVINO IR or TFLite, step by step.",
        epilog="other commands: tfwizard inspect MODEL | convert MODEL --to ... -o DIR | demo | view MODEL",
    )
    parser.add_argument("model", nargs="?", help="model file or SavedModel directory (or pick it in the wizard)")
    parser.add_argument("--plain", action="store_true", help="plain prompts instead of the full-screen app")
    parser.add_argument("--yes", action="store_true", help="with --plain: take every default without asking")
    parser.add_argument("--dryrun", action="store_true",
                        help="walk the steps, then print the equivalent command on stdout; write nothing")
    parser.add_argument("-V", "--version", action="store_true",
                        help="print the version and which targets this install can convert to (and why not)")
    return parser
