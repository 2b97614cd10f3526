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

    .venv/bin/python bench/bench_startup.py --instructions

counts instead the instructions each app executes until its first screen is written (valgrind's
cachegrind; the process stops there). That repeats to 0.1 %, where the clock does not, so it
shows what a change to the first screen costs; the goal itself is about time.
"""
import argparse, os, pty, re, select, shutil, statistics, subprocess, sys, tempfile, time
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
# Runs an app (a script, or a module as -m does) and ends the process when the marker is about to be
# written to the terminal: the first screen is ready. Used under valgrind by --instructions.
UNTIL_FIRST_SCREEN = """
import os, runpy, sys
from textual.drivers.linux_driver import LinuxDriver

marker, target = sys.argv[1], sys.argv[2]
write = LinuxDriver.write

def write_until_marker(self, data):
    if marker in data:
        os._exit(0)
    return write(self, data)

LinuxDriver.write = write_until_marker
sys.argv = sys.argv[2:]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
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


def instructions(target: list[str], marker: bytes, cwd: Path, tmp: Path) -> int:
    """Instructions executed from the start of `python UNTIL_FIRST_SCREEN marker *target` to its end."""
    log = tmp / "cachegrind.log"
    argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", f"--log-file={log}",
            sys.executable, str(tmp / "until_first_screen.py"), marker.decode(), *target]
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, close_fds=True)
    os.close(slave)
    try:
        while proc.poll() is None:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    os.read(master, 1 << 16)
                except OSError:
                    break
        proc.wait(timeout=120)
    finally:
        proc.kill()
        os.close(master)
    counted = re.search(r"I\s+refs:\s+([\d,]+)", log.read_text())
    if proc.returncode != 0 or not counted:
        raise SystemExit(f"{target}: no first screen under valgrind\n{log.read_text()[-2000:]}")
    return int(counted.group(1).replace(",", ""))


def main_instructions() -> None:
    if not shutil.which("valgrind"):
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "minimal_app.py").write_text(MINIMAL)
        (tmp / "until_first_screen.py").write_text(UNTIL_FIRST_SCREEN)
        apps = {
            "minimal Textual app": ([str(tmp / "minimal_app.py")], b"minimal app ready"),
            "tfwizard": (["wizard"], b"Model path"),
            "tfwizard MODEL": (["wizard", "sample_models/image_classifier"], b"Model path"),
        }
        counts = {name: instructions(target, marker, ROOT, tmp) for name, (target, marker) in apps.items()}
    base = counts["minimal Textual app"]
    print(f"{'app':<22}{'instructions to the first screen':>34}{'ratio':>8}")
    for name, n in counts.items():
        print(f"{name:<22}{n / 1e6:>32.1f} M{n / base:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions to the first screen (valgrind) instead of timing launches")
    args = parser.parse_args()
    # Byte-compile our own sources first, as an installed (non-editable) package or a second run
    # would have them; this machine sets PYTHONDONTWRITEBYTECODE, so imports would never cache.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "engine"), str(ROOT / "wizard")], check=True)
    if args.instructions:
        main_instructions()
        return
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
