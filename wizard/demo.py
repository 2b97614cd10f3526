"""`tfwizard demo`: a guided conversion of a bundled sample, for someone new to all this.

The plain prompts, with each step's longer explanation (Step.teach in wizard/steps.py, which
the full-screen app's demo shows too) and answers suggested for the sample: a TF-Slim style
Inception inference graph + checkpoint, images in [-1, 1], so the preprocessing step can show
the Slim mean/scale example. It ends with a verified model and the command that made it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.errors import UserError

from .steps import DEMO_INTRO, Answers

DEMO_MODEL = Path("slim_checkpoint") / "inception_v1_inference_graph.pb"
DEMO_OUTPUT = "tfwizard-demo"


def samples_dir() -> Path:
    """sample_models/ of this checkout, wherever the command is run from."""
    here = Path(__file__).resolve().parent.parent / "sample_models"
    if not (here / DEMO_MODEL).is_file():
        raise UserError(f"{here / DEMO_MODEL}: the demo's sample model is missing; run the demo from a clone of "
                        "the tfwizard repository (pip install -e .), or rebuild it with sample_models/build.py")
    return here


def demo_answers(cwd: Path | None = None) -> Answers:
    """The sample loaded, with the answers the demo suggests (each is still asked)."""
    answers = Answers()
    answers.apply("model", str(samples_dir() / DEMO_MODEL))
    answers.batch = "1"  # as in the TF-Slim → OpenVINO example: one image at a time
    answers.preprocessing = "inception"  # mean 127.5, scale 127.5: [0, 255] → [-1, 1]
    answers.output_dir = free_directory(cwd or Path.cwd(), DEMO_OUTPUT)
    return answers


def free_directory(parent: Path, name: str) -> str:
    """name, name-2, name-3, ...: the first that does not exist yet (the demo never replaces anything)."""
    candidate, n = name, 1
    while (parent / candidate).exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tfwizard demo", description="A guided conversion of a bundled sample model.")
    parser.add_argument("--yes", action="store_true", help="take every suggested answer without asking")
    parser.add_argument("--dryrun", action="store_true", help="end with the command instead of running it")
    args = parser.parse_args(argv)
    from .plain import Prompter, walk  # questionary only for this face

    ui = Prompter(yes=args.yes)
    try:
        answers = demo_answers()
    except UserError as e:
        print(f"tfwizard: error: {e}", file=sys.stderr)
        return e.exit_code
    ui.say("tfwizard demo")
    ui.teach(DEMO_INTRO)
    return walk(answers, model=answers.model, dryrun=args.dryrun, ui=ui, teach=True)
