"""Driving the wizard headlessly with Textual's Pilot: for the tests and for docs/screenshots.py
(which puts tests/ on sys.path; it is not shipped in the package).

Waits are on the app (pending messages, our workers), never on the clock.
"""

from __future__ import annotations


async def settle(pilot) -> None:
    """Wait for our workers (reading a model, the conversion, a cancel, Netron) and the messages they post.

    Not every worker: the DirectoryTree's loader runs for as long as the tree is shown."""
    from textual.worker import WorkerState

    await pilot.pause()
    while ours := [w for w in pilot.app.workers if w.group in ("load", "run", "cancel", "netron") and not w.is_finished]:
        if any(w.state == WorkerState.PENDING for w in ours):
            await pilot.pause()  # a worker can't be awaited before it has started
        else:
            await pilot.app.workers.wait_for_complete(ours)
    await pilot.pause()


async def press(pilot, *keys) -> None:
    """Press each key in turn, letting the app settle after each."""
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


async def analysed(pilot, timeout: float = 240) -> None:
    """Wait until the background analysis (wizard.analysis) of the picked model has answered, if one runs."""
    import time

    deadline = time.monotonic() + timeout
    while (a := pilot.app.analysis) is not None and not a.done and not a.cancelled:
        assert time.monotonic() < deadline, "the background analysis did not answer"
        await pilot.pause(0.1)
    await pilot.pause()
