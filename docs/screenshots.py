"""The README's pictures: the wizard at 80x24, driven headlessly through its steps, as SVG files.

Run it from a clone (with the install from the README):

    .venv/bin/python docs/screenshots.py [--out DIR] [--no-convert]

It works in a temporary copy of sample_models/ (the Model step lists the working directory and
the conversion writes beside the model), takes image_classifier.keras to ONNX and TFLite, really
converts it (TensorFlow runs in the child process, as always) and writes model.svg, graph.svg,
targets.svg, review.svg, run.svg and result.svg into docs/ (or DIR). --no-convert stops after
Review: no TensorFlow, a few seconds.
"""

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

from wizard.app import WizardApp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test helper that drives the app
from pilot import analysed, press, settle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZE = (80, 24)
MODEL = "image_classifier.keras"


async def shoot(app: WizardApp, out: Path, *, convert: bool) -> list[Path]:
    written = []

    def save(name: str) -> None:
        title = f"tfwizard · {app.screen.STEP.capitalize()}"
        (out / f"{name}.svg").write_text(app.export_screenshot(title=title))
        written.append(out / f"{name}.svg")

    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        while not app.screen.query_one("#tree").root.children:  # the file tree lists the directory
            await pilot.pause()
        save("model")
        await press(pilot, "ctrl+n")
        await analysed(pilot)  # the frozen graph's verdicts, not "analysing with TensorFlow… N s"
        app.screen.query_one("#netron NavButton").press()  # a real server on 127.0.0.1: its URL is shown
        await press(pilot, "end")  # the body has focus: down to the outline
        save("graph")
        await press(pilot, "ctrl+n", "ctrl+n", "ctrl+n")  # Shapes, Preprocessing: the defaults
        await press(pilot, "down", "down", "down", "space")  # also TFLite
        save("targets")
        await press(pilot, "ctrl+n")
        save("review")
        if convert:
            await press(pilot, "ctrl+n")  # Run; settle() returns when the child has exited
            if app.conversion.returncode != 0:
                raise SystemExit(f"the conversion failed (exit {app.conversion.returncode})")
            save("run")
            await press(pilot, "enter")  # Results
            save("result")
        await pilot.press("ctrl+q")
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where the SVG files go (default: docs/)")
    parser.add_argument("--no-convert", action="store_true", help="stop after Review: no conversion, no TensorFlow")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    out, cwd = args.out.resolve(), os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "sample_models"
        shutil.copytree(ROOT / "sample_models", work)
        os.chdir(work)  # relative paths on screen, as a person would type them
        try:
            written = asyncio.run(shoot(WizardApp(MODEL), out, convert=not args.no_convert))
        finally:
            os.chdir(cwd)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
