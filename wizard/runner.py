"""Run the conversion command the wizard showed, as a child process, and read its progress.

The child is `python -m wizard convert ...` with exactly the arguments of
`options.command()`; TFWIZARD_PROGRESS=json makes it print one JSON event per line
on stdout instead of text. TensorFlow lives and dies in the child, so Cancel is a
signal: the child's SIGTERM handler removes its temporary output before exiting.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

TF_INFO_LOG = re.compile(r"^I\d{4} \d\d:\d\d:\d\d")
CANCEL_GRACE_SECONDS = 20  # TF may sit in native code for a while before Python sees the signal


class ConversionRun:
    def __init__(self, options):
        self.options = options
        self.command = options.command()
        self.process: subprocess.Popen | None = None
        self.cancelled = False

    def start(self) -> None:
        argv = [sys.executable, "-m", "wizard", *self.options.argv()[1:]]
        env = {**os.environ, "TFWIZARD_PROGRESS": "json", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        text=True, env=env, start_new_session=True, bufsize=1)

    def events(self) -> Iterator[dict]:
        """Progress events as the child prints them; other output (TensorFlow's logs) as {"event": "output"}."""
        for line in self.process.stdout:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if isinstance(event, dict) and "event" in event:
                yield event
            elif not TF_INFO_LOG.match(line):  # TensorFlow's C++ info chatter says nothing to a user
                yield {"event": "output", "message": line}
        self.process.wait()

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def cancel(self) -> None:
        """Stop the child; it cleans up after itself, and if it has to be killed we do."""
        if self.process is None or self.process.poll() is not None:
            return
        self.cancelled = True
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(CANCEL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.remove_leftovers()

    def remove_leftovers(self) -> None:
        """The temporary siblings a killed child could not remove (never the output directory itself)."""
        out = Path(self.options.output_dir).resolve()
        from engine.detect import glob_escape

        for tmp in out.parent.glob(f".{glob_escape(out.name)}.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)

    def report(self) -> dict | None:
        """OUTDIR/report.json of a finished run, if it got that far (not one an earlier run left there)."""
        from engine.report import EXIT_FAILED, EXIT_MISMATCH, EXIT_OK

        if self.returncode not in (EXIT_OK, EXIT_FAILED, EXIT_MISMATCH):
            return None
        path = Path(self.options.output_dir) / "report.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None
