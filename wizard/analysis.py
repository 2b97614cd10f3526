"""The wizard's background analysis: `tfwizard inspect --deep MODEL --json` in a child process.

Started when a model is picked (after the first screen is drawn), never waited for: the Graph and
Targets steps show "analysing with TensorFlow… N s" and the frozen graph's verdicts when it answers.
Going back to the Model step cancels it. The child is the CLI's own command, so it follows convert's
trust rules (no --trust-model unless the user ticked it) and its sandbox; a cached answer
(engine.deep) is read here directly, without starting a process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

KILL_AFTER_SECONDS = 5  # SIGTERM lets the child remove its temporary files; then SIGKILL


class Analysis:
    """One deep inspect of the answers' model, tag, signature and trust."""

    def __init__(self, answers):
        info = answers.info
        self.trust = bool(answers.trust_model and info.code_risks)
        self.key = (answers.model, answers.tag, answers.signature, self.trust)
        self.argv = [sys.executable, "-m", "wizard", "inspect", "--deep", answers.model, "--json"]
        self.argv += ["--tag", answers.tag] if answers.tag else []
        self.argv += ["--signature", answers.signature] if answers.signature else []
        self.argv += ["--trust-model"] if self.trust else []
        self.started = time.monotonic()
        self.result: dict | None = None
        self.error: str | None = None
        self.cancelled = False
        self.process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None

    def seconds(self) -> int:
        return int(time.monotonic() - self.started)

    def from_cache(self) -> bool:
        """Take the cached answer, if there is one (no process; reads and hashes the model)."""
        from engine.deep import cached, deep_options

        model, tag, signature, trust = self.key
        hit = cached(deep_options(model, tag=tag, signature=signature, trust_model=trust))
        if hit is not None:
            self.result = {**hit, "cached": True}
        return hit is not None

    def run(self) -> None:
        """The cached answer, else the child's (blocks: call it in a thread)."""
        if self.done or self.from_cache():
            return
        with self._lock:
            if self.cancelled:
                return
            self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        out, err = self.process.communicate()
        if self.cancelled:
            return
        if self.process.returncode == 0:
            try:
                self.result = json.loads(out)
                return
            except ValueError:
                pass
        lines = [line for line in err.splitlines() if line.startswith("tfwizard: error: ")]
        self.error = (lines[-1].removeprefix("tfwizard: error: ") if lines
                      else f"the analysis exited with {self.process.returncode}")

    def cancel(self) -> None:
        """Stop the child (its whole process group; its TensorFlow worker dies with it)."""
        if self.done:
            return  # answered: nothing to stop, and the answer stays good
        with self._lock:
            self.cancelled = True
            process = self.process
        if process is None or process.poll() is not None:
            return
        _signal(process, signal.SIGTERM)
        timer = threading.Timer(KILL_AFTER_SECONDS, lambda: process.poll() is None and _signal(process, signal.SIGKILL))
        timer.daemon = True
        timer.start()


class Background:
    """The one analysis a front end keeps going: restarted when its model, tag, signature or trust change."""

    def __init__(self):
        self.current: Analysis | None = None

    def start(self, answers, done=lambda analysis: None, *, cache_first: bool = False) -> Analysis | None:
        """Analyse the answers' model in a thread, then call done(analysis) there, unless that runs or
        answered already; None when the model may not be loaded yet (it runs code and the user has not
        said to trust it). cache_first: look in the cache before returning (the plain flow asks on at
        once, and a cached answer should be there by the Targets question)."""
        if answers.info is None or (answers.info.code_risks and not answers.trust_model):
            self.cancel()
            return None
        fresh = Analysis(answers)
        if self.current is not None and self.current.key == fresh.key and not self.current.cancelled:
            return self.current
        self.cancel()
        self.current = fresh
        if cache_first and fresh.from_cache():
            done(fresh)
            return fresh
        threading.Thread(target=lambda: (fresh.run(), done(fresh)), daemon=True).start()
        return fresh

    def cancel(self) -> None:
        if self.current is not None:
            self.current.cancel()


def _signal(process, signum) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def status(analysis: Analysis | None, info, trust_model: bool) -> tuple[dict | None, str]:
    """(the frozen graph's description or None, what to say meanwhile) for steps.preflight_verdicts."""
    if info.code_risks and not trust_model:
        return None, "checked with TensorFlow once you trust the model (loading it runs code)"
    if analysis is None or analysis.cancelled:
        return None, "checked with TensorFlow when you go on"
    if analysis.result is not None:
        return analysis.result, ""
    if analysis.error is not None:
        return None, f"TensorFlow could not freeze it: {analysis.error}"
    return None, f"analysing with TensorFlow… {analysis.seconds()} s"
