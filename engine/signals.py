"""SIGINT/SIGTERM for the converting CLI: one Interrupted, cleanup that runs to the end, and
short stretches of system calls no signal may split (see interruptible())."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Callable

Emit = Callable[..., None]


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signum` says which. The CLI exits with 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_received: list[int] = []  # signals received inside interruptible(); sticky until it exits
_raised: list[int] = []  # the one signal raised as Interrupted
RECHECK_SECONDS = 0.05


@contextlib.contextmanager
def interruptible():
    """SIGINT and SIGTERM raise Interrupted in the main thread, once.

    Later signals are only recorded, so the cleanup the first one started runs to the end. The
    record is also checked at every progress event (and before the output is moved into place):
    a library that swallows KeyboardInterrupt (a bare `except:`) cannot make us carry on.
    While a module is being imported the exception is held back and retried every 50 ms: native
    extensions run Python code during their initialisation (onnx's nanobind enums), and an
    exception thrown through that C++ aborts the process, leaving the temporary output behind.
    """
    def handler(signum, frame):
        if signum != signal.SIGALRM:
            _received.append(signum)
        if not _received or _raised:
            return
        if _importing(frame):
            signal.setitimer(signal.ITIMER_REAL, RECHECK_SECONDS)
            return
        _raised.append(_received[0])
        raise Interrupted(_received[0])

    _drop_dangling_altstack()
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for s, h in previous.items():
            signal.signal(s, h)
        _received.clear()
        _raised.clear()


def _drop_dangling_altstack() -> None:
    """Disable the main thread's alternate signal stack if its memory is gone.

    OpenVINO 2026.4's CPU plugin can leave the thread an alternate stack it has already
    unmapped (seen after two Cores compiled and were freed). Python installs its handlers with
    SA_ONSTACK, so the next signal would segfault instead of interrupting. Linux only; the CLI
    does not need it (its worker, where OpenVINO runs, handles no signals).
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return
    import ctypes

    class StackT(ctypes.Structure):
        _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]

    SS_DISABLE = 2
    try:
        libc = ctypes.CDLL(None)
        current = StackT()
        if libc.sigaltstack(None, ctypes.byref(current)) != 0 or not current.ss_sp or current.ss_flags & SS_DISABLE:
            return
        with open("/proc/self/maps") as maps:
            for line in maps:
                low, high = (int(x, 16) for x in line.split()[0].split("-"))
                if low <= current.ss_sp < high:
                    return  # mapped: leave it (faulthandler's, or a library's that is still alive)
        libc.sigaltstack(ctypes.byref(StackT(None, SS_DISABLE, 0)), None)
    except (OSError, AttributeError, ValueError):
        pass


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def raise_if_interrupted() -> None:
    if _received:
        raise Interrupted(_received[0])


def checking_interrupts(emit: Emit) -> Emit:
    def checked(event: str, **fields) -> None:
        raise_if_interrupted()
        emit(event, **fields)
    return checked


@contextlib.contextmanager
def signals_held():
    """Hold SIGINT/SIGTERM for a few system calls; they are delivered when the block ends."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
