"""Text taken from a model, made safe to show: names can carry terminal escapes (ESC]0;title BEL,
ESC[2J, OSC 52 clipboard writes). Every face prints model text through printable(), and every
printed shell command through shell_join(), so no raw control byte reaches a terminal. Sizes
are shown by human_size().
"""

from __future__ import annotations

import re
import shlex

# C0 controls, DEL and C1 controls (a UTF-8 terminal takes U+009B as CSI).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _escaped(match: re.Match) -> str:
    return f"\\x{ord(match.group()):02x}"


def printable(text: object) -> str:
    """`text` with each control character shown as \\xHH (ESC → \\x1b): one line, inert on a terminal."""
    return _CONTROL.sub(_escaped, str(text))


def printable_lines(text: str) -> str:
    """printable() for each line of a multi-line text (its newlines stay)."""
    return "\n".join(printable(line) for line in str(text).split("\n"))


def shell_quote(arg: str) -> str:
    """shlex.quote, except that an argument with control characters is written as $'...' (bash, zsh,
    ksh; not POSIX sh): copied and pasted it is the same bytes, and printed it is inert."""
    if not _CONTROL.search(arg):
        return shlex.quote(arg)
    body = arg.replace("\\", "\\\\").replace("'", "\\'")
    return "$'" + _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x80
                               else f"\\u{ord(m.group()):04x}", body) + "'"


def shell_join(argv) -> str:
    return " ".join(shell_quote(str(a)) for a in argv)


def human_size(n: float) -> str:
    """A file size for people, in decimal units as file managers show them: '812 bytes', '2.7 kB', '97.3 MB'."""
    for unit in ("bytes", "kB", "MB"):
        if round(n, 1) < 1000:  # 999,950 bytes is "1.0 MB", not "1000.0 kB"
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
