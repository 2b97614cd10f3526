"""`tfwizard`: dispatch to the engine's scriptable commands, or start the interactive wizard."""

from __future__ import annotations

import os
import sys

ENGINE_COMMANDS = {"inspect", "convert"}


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ENGINE_COMMANDS:
        from engine.cli import main as engine_main

        code = engine_main(argv)
        if from_command_line and "tensorflow" in sys.modules:
            _exit_now(code)
        return code
    print(
        "tfwizard: the interactive wizard is not built yet; use 'tfwizard inspect MODEL' "
        "(see 'tfwizard inspect --help')",
        file=sys.stderr,
    )
    return 2


def _exit_now(code: int) -> None:
    """End the process without the interpreter's teardown, which after a conversion is TensorFlow's
    (~1.2 s of destructors for nothing). Everything is written, renamed and closed by now; only
    buffered output and logging handlers remain to flush."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
