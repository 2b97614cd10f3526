"""`tfwizard`: dispatch to the engine's scriptable commands, or start the interactive wizard."""

from __future__ import annotations

import sys

ENGINE_COMMANDS = {"inspect", "convert"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ENGINE_COMMANDS:
        from engine.cli import main as engine_main

        return engine_main(argv)
    print(
        "tfwizard: the interactive wizard is not built yet; use 'tfwizard inspect MODEL' "
        "(see 'tfwizard inspect --help')",
        file=sys.stderr,
    )
    return 2
