"""Launch → first screen: the wizard vs a minimal Textual app (one Static), in the same run.

Run from the repo root:

    .venv/bin/python bench/bench_startup.py [--repeat N]

Each app is started N times, alternating, in a pseudo-terminal of 80x24, the way a person
starts it in a shell. The clock runs from spawn until the first screen's text has been
written to the terminal (for the wizard: the Model step's "Model path"), and a keystroke
sent then (ctrl+q) must end the app: that proves the screen is also interactive. Prints
the medians and their ratio; the goal is wizard <= 1.3x the minimal app.

On a shared machine one run's ratio moves by about +-0.1 with the load: use 15 launches or
more, and look at several runs. The spread line shows the ratio of each wizard launch to the
minimal app's launch just before it (quartiles), which says how much a run can be trusted.
"""
import argparse, os, pty, select, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = """
from textual.app import App
from textual.widgets import Static

class Minimal(App):
    def compose(self):
        yield Static("minimal app ready")

Minimal().run()
"""


def first_screen(argv: list[str], marker: bytes, cwd: Path) -> tuple[float, float]:
    """(seconds to the marker on screen, seconds from then until ctrl+q has ended the app)."""
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, close_fds=True)
    os.close(slave)
    screen = b""
    try:
        while marker not in screen:
            if proc.poll() is not None or time.perf_counter() - started > 60:
                raise SystemExit(f"{argv}: no first screen\n{screen[-2000:].decode(errors='replace')}")
            select.select([master], [], [], 0.5)
            try:
                screen += os.read(master, 1 << 16)
            except (BlockingIOError, OSError):
                pass
        drawn = time.perf_counter()
        os.write(master, b"\x11")  # ctrl+q
        while proc.poll() is None:
            select.select([master], [], [], 0.05)
            try:
                os.read(master, 1 << 16)
            except (BlockingIOError, OSError):
                pass
            if time.perf_counter() - drawn > 30:
                raise SystemExit(f"{argv}: did not react to ctrl+q")
        return drawn - started, time.perf_counter() - drawn
    finally:
        proc.kill()
        proc.wait()
        os.close(master)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    # Byte-compile our own sources first, as an installed (non-editable) package or a second run
    # would have them; this machine sets PYTHONDONTWRITEBYTECODE, so imports would never cache.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "engine"), str(ROOT / "wizard")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        minimal = Path(tmp) / "minimal_app.py"
        minimal.write_text(MINIMAL)
        apps = {
            "minimal Textual app": ([sys.executable, str(minimal)], b"minimal app ready"),
            "tfwizard": ([sys.executable, "-m", "wizard"], b"Model path"),
            "tfwizard MODEL": ([sys.executable, "-m", "wizard", "sample_models/image_classifier"], b"Model path"),
        }
        first_screen(*apps["tfwizard"], ROOT)  # warm the file cache once, for both
        times = {name: [] for name in apps}
        for _ in range(args.repeat):
            for name, (argv, marker) in apps.items():
                times[name].append(first_screen(argv, marker, ROOT))
    base = statistics.median(t for t, _ in times["minimal Textual app"])
    print(f"{'app':<22}{'first screen (median)':>24}{'ctrl+q → exit':>16}{'ratio':>8}")
    for name, runs in times.items():
        drawn = statistics.median(t for t, _ in runs)
        quit_ = statistics.median(q for _, q in runs)
        print(f"{name:<22}{drawn:>22.3f} s{quit_:>14.3f} s{drawn / base:>8.2f}")
    ratio = statistics.median(t for t, _ in times["tfwizard"]) / base
    paired = [w / m for (w, _), (m, _) in zip(times["tfwizard"], times["minimal Textual app"])]
    q1, q2, q3 = statistics.quantiles(paired, n=4) if len(paired) > 1 else paired * 3
    print(f"spread: tfwizard / minimal app launch by launch: quartiles {q1:.2f} {q2:.2f} {q3:.2f}")
    print(f"goal: tfwizard <= 1.3x the minimal app: {'met' if ratio <= 1.3 else 'NOT met'} ({ratio:.2f}x, {args.repeat} runs each)")


if __name__ == "__main__":
    main()
