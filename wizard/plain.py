"""`tfwizard --plain`: the wizard's steps as one prompt after another (questionary).

For terminals where a full-screen app is unwelcome: a plain SSH session, a screen reader, a
recorded demo. Every question, default, choice and validation message comes from
wizard/steps.py, so this asks what the full-screen app asks and ends with the same command.

stdout carries only that command (`cmd=$(tfwizard --plain --dryrun model.pb)` works); prompts
and everything else go to stderr. Nothing here imports TensorFlow: the conversion runs as a
child process (wizard/runner.py), exactly the command shown.
"""

from __future__ import annotations

import shutil
import signal
import sys
import textwrap
import time
from collections import deque
from contextlib import contextmanager

import questionary
from prompt_toolkit.application.current import create_app_session, get_app_session
from prompt_toolkit.completion import PathCompleter
from prompt_toolkit.output import create_output

from engine.errors import UserError
from engine.text import human_size, printable, printable_lines, shell_quote

from .steps import (STEP_KEYS, STEPS, Answers, Question, Step, back_question, checked_options, outcomes,
                    preflight_verdicts, preprocessing_preview, questions, review_action, target_title)

CANCELLED = "tfwizard: cancelled; nothing written"
KEY_HINTS = {"select": "arrow keys, Enter", "multi": "arrow keys, Space to tick, Enter"}


YES_REFUSED = "(--yes took the default answer; run without --yes to give another)"


def run_plain(model: str | None, *, dryrun: bool, yes: bool = False) -> int:
    """Walk the steps with prompts; `yes` takes every default without asking (for scripts and demos)."""
    return walk(Answers(), model=model, dryrun=dryrun, ui=Prompter(yes=yes))


def walk(answers: Answers, *, model: str | None, dryrun: bool, ui: "Prompter", teach: bool = False) -> int:
    """The whole flow; returns the exit code. Ctrl-C anywhere ends it with one line and nothing written."""
    try:
        with _prompt_session():
            return _walk(answers, model, dryrun, ui, teach)
    except KeyboardInterrupt:
        ui.say(CANCELLED)
        return 130
    except EOFError:  # stdin closed before the last answer (a pipe ran dry)
        ui.say("tfwizard: input ended before the last answer; nothing written. Answer in a terminal, "
               "pass --yes to take the defaults, or script it with `tfwizard convert`")
        return 2
    except UserError as e:  # only with --yes: an answer that was refused, and nobody to ask again
        ui.say(f"tfwizard: error: {e}")
        return e.exit_code


@contextmanager
def _prompt_session():
    """Prompts render on stderr so stdout carries only the command. A session whose output was
    already chosen (tests, a caller with its own terminal) is kept; create_app_session() itself
    checks the same private field."""
    if get_app_session()._output is not None:
        yield
        return
    with create_app_session(output=create_output(stdout=sys.stderr)):
        yield


def _walk(answers: Answers, model: str | None, dryrun: bool, ui: "Prompter", teach: bool) -> int:
    from .analysis import Background

    background = Background()  # `inspect --deep` of the model, while the questions go on
    try:
        return _steps(answers, model, dryrun, ui, teach, background)
    finally:
        background.cancel()


def _steps(answers: Answers, model: str | None, dryrun: bool, ui: "Prompter", teach: bool, background) -> int:
    given = bool(model)
    index = 0
    while True:
        step = STEPS[index]
        _enter(step.key, ui, teach)
        if step.key == "model":
            background.cancel()
            if not (given and _take_given(model, answers, ui)):
                _ask_step(step, answers, ui)
            given = False  # coming back here asks again
            background.start(answers, cache_first=True)
        elif step.key == "graph":
            _show_graph(answers, ui)
            _ask_step(step, answers, ui)
            background.start(answers, cache_first=True)  # another tag or signature, or trusted now
        elif step.key == "targets":
            _show_analysis(answers, background.current, ui)
            _ask_step(step, answers, ui)
        elif step.key == "review":
            _ask_step(step, answers, ui)
            action = _review(answers, dryrun, ui)
            if action == "print":
                print(answers.options().command(), flush=True)  # the only line on stdout
                return 0
            if action == "run":
                return _run(answers.options(), ui, teach)
            index = STEP_KEYS.index(ui.ask(back_question()))
            continue
        else:
            _ask_step(step, answers, ui)
            if step.key == "preprocess":
                ui.say("  " + preprocessing_preview(answers))
        index += 1


CHECK = Step("check", "Check", "")  # Review's extras: --sample-input, --benchmark (steps._check_questions)


def _review(answers: Answers, dryrun: bool, ui: "Prompter") -> str:
    """Show the checked command and ask what to do: "run", "print" or "back" (after "check", ask again)."""
    from engine.plan import upstream_lines

    while True:
        try:
            options = checked_options(answers)
        except UserError as e:
            ui.retry(str(e))
            return "back"
        ui.say("\n  " + options.command())
        ui.say("  the same with the upstream tools:\n" + "\n".join(
            "    " + line for line in upstream_lines(options, answers.info)))
        action = ui.ask(review_action(dryrun=dryrun))
        if action != "check":
            return action
        answers.checking = True
        _ask_step(CHECK, answers, ui)


def _take_given(model: str, answers: Answers, ui: "Prompter") -> bool:
    """The model named on the command line, if it loads; else say why (it becomes the default to fix)."""
    try:
        if not answers.loaded(model):  # the demo's answers hold their model already
            answers.apply("model", model)
    except UserError as e:
        ui.retry(str(e))
        answers.model = model.strip()
        return False
    ui.say(f"  {answers.model}")
    return True


def _ask_step(step: Step, answers: Answers, ui: "Prompter") -> None:
    """Ask the step's questions one at a time; the list is recomputed after each answer because
    later questions depend on earlier ones (custom preprocessing → mean and scale)."""
    asked: set[str] = set()
    while pending := [q for q in questions(step.key, answers) if q.key not in asked]:
        q = pending[0]
        value = ui.ask(q)
        problem = q.validate(value) if q.kind == "confirm" else None  # text and multi are checked in the prompt
        try:
            answers.apply(q.key, value)
        except UserError as e:  # e.g. a path that is not a model: say why, ask again
            ui.retry(str(e))
            continue
        if problem:  # "replace it?" → no: say what to do instead and start the step over
            ui.retry(problem)
            asked.clear()
            continue
        asked.add(q.key)


def _show_graph(answers: Answers, ui: "Prompter") -> None:
    from engine.report import format_info

    info = answers.info
    ui.say(textwrap.indent(format_info(info), "  "))
    ui.say("  outline")
    ui.say(textwrap.indent(answers.outline, "    "))
    for title, _, text in preflight_verdicts(info):
        ui.say(f"  {title:<14} {text}")


def _show_analysis(answers: Answers, analysis, ui: "Prompter") -> None:
    """The frozen graph's verdicts if the background analysis has answered; else how long it has run."""
    from .analysis import status

    deep, waiting = status(analysis, answers.info, answers.trust_model)
    if deep is not None:
        answers.deep = deep  # the targets' notes below say the same
        ui.say("  with TensorFlow, on the frozen graph:" + (" (cached)" if deep.get("cached") else ""))
        for o in deep["outputs"]:
            ui.say(f"  output {o['name']}: {o['dtype']} {o['shape'] if o['shape'] is not None else '[?]'}")
    else:
        ui.say(f"  {waiting}; not ready yet, so these are the verdicts without TensorFlow:")
    for title, _, text in preflight_verdicts(answers.info, deep):
        ui.say(f"  {title:<14} {text}")


# --- the run ---------------------------------------------------------------------------------------


def _run(options, ui: "Prompter", teach: bool) -> int:
    from .runner import ConversionRun

    _enter("run", ui, teach)
    run = ConversionRun(options)
    run.start()
    chatter: deque[str] = deque(maxlen=20)  # TensorFlow's own output, shown only if the child dies
    started = time.monotonic()
    try:
        for event in run.events():
            line = _progress_line(event)
            if line:
                ui.say(f"  [{time.monotonic() - started:5.1f} s] {line}")
            elif event["event"] == "output":
                chatter.append(event["message"])
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan the child
        try:
            run.cancel()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        raise
    code = run.process.returncode
    report = run.report()
    if report is None:
        errors = [m for m in chatter if m.startswith("tfwizard:")] or list(chatter)[-5:]
        ui.say("\n".join(errors) or f"tfwizard: the conversion stopped with exit code {code}")
        return code or 1
    _enter("result", ui, teach)
    _show_result(report, options, ui)
    return code


def _enter(key: str, ui: "Prompter", teach: bool) -> None:
    index = STEP_KEYS.index(key)
    ui.header(STEPS[index], index)
    if teach and STEPS[index].teach:
        ui.teach(STEPS[index].teach)


def _progress_line(event: dict) -> str | None:
    kind, target = event.get("event"), event.get("target")
    prefix = f"{target_title(target)}: " if target else ""
    if kind in ("stage", "log"):
        return prefix + event.get("message", "")
    if kind == "target":
        return prefix + (event.get("status", "") + (f": {event['message']}" if event.get("message") else ""))
    if kind == "done":
        return f"finished in {event.get('seconds', 0):.1f} s"
    return None


def _show_result(report: dict, options, ui: "Prompter") -> None:
    results = outcomes(report, options)
    for o in results:
        if o.status not in ("ok", "mismatch"):
            ui.say(f"  {o.title}: {o.status.upper()}: {o.message}")
            continue
        ui.say(f"  {o.title}: {'ok' if o.status == 'ok' else 'MISMATCH'}, {human_size(o.size)}, converted in {o.seconds:.1f} s")
        for path, size in o.files.items():
            ui.say(f"    {options.output_dir}/{path}  {human_size(size)}")
        ui.say(f"    verified: {o.check}" if o.passed is not None else f"    {o.check}")
        ui.say("    load it:\n" + textwrap.indent(o.snippet, "      "))
    if report.get("benchmark"):
        from engine.benchmark import table

        ui.say("  speed (batch 1):\n" + "\n".join("    " + line for line in table(report["benchmark"])))
    ui.say(f"  report: {options.output_dir}/report.json")
    for o in results[:1]:
        ui.say(f"  see it as a graph: tfwizard view {shell_quote(o.model_file)}")
    ui.say("  to convert again the same way:\n    " + options.command())


# --- the terminal --------------------------------------------------------------------------------


class Prompter:
    """Asks Questions with questionary, or (yes=True) takes each default and says so."""

    def __init__(self, *, yes: bool = False):
        self.yes = yes
        self.width = min(shutil.get_terminal_size((100, 24)).columns, 100) - 2

    def say(self, text: str = "") -> None:
        print(printable_lines(text), file=sys.stderr, flush=True)  # names from the model are in it

    def header(self, step: Step, index: int) -> None:
        self.say(f"\n[{index + 1}/{len(STEPS)}] {step.title}")
        self.say(textwrap.fill(step.help, self.width, initial_indent="  ", subsequent_indent="  "))

    def teach(self, text: str) -> None:
        self.say(textwrap.fill(text, self.width, initial_indent="  | ", subsequent_indent="  | "))

    def retry(self, problem: str) -> None:
        """An answer was refused: say why before asking again (with --yes nobody can answer: stop)."""
        if self.yes:
            raise UserError(f"{problem} {YES_REFUSED}")
        self.say(f"  {problem}")

    def ask(self, q: Question):
        if self.yes:
            return self._take_default(q)
        return _prompt(q).unsafe_ask()

    def _take_default(self, q: Question):
        value = q.default if q.kind != "text" else str(q.default or "")
        problem = q.validate(value)
        if problem:
            raise UserError(f"{q.label}: {problem} {YES_REFUSED}")
        shown = value
        if q.kind == "select":
            shown = dict(q.choices).get(value, value)
        elif q.kind == "multi":
            shown = ", ".join(dict(q.choices).get(v, v) for v in value)
        elif q.kind == "confirm":
            shown = "yes" if value else "no"
        self.say(f"? {q.label}: {shown}")
        return value


def _prompt(q: Question) -> questionary.Question:
    """The questionary prompt for a Question: its kind, label, default, choices and validator."""
    hint = printable("; ".join(h for h in (q.help, KEY_HINTS.get(q.kind, "")) if h))
    label = printable(q.label)  # questionary prints these as they are
    instruction = f"({hint})" if hint else None
    if q.kind == "text":
        path = q.completion == "path"
        return questionary.text(label, default=str(q.default or ""), instruction=instruction,
                                validate=lambda text: printable(q.validate(text) or "") or True,
                                completer=PathCompleter(expanduser=True) if path else None,
                                reserve_space_for_menu=6 if path else 0)  # no blank lines under plain questions
    if q.kind == "select":
        choices = [questionary.Choice(printable(title), value) for value, title in q.choices]
        default = q.default if q.default in dict(q.choices) else None
        return questionary.select(label, choices=choices, default=default, instruction=instruction)
    if q.kind == "multi":
        chosen = set(q.default or ())
        choices = [questionary.Choice(printable(title), value, checked=value in chosen) for value, title in q.choices]
        return questionary.checkbox(label, choices=choices, instruction=instruction,
                                    validate=lambda values: printable(q.validate(values) or "") or True)
    if q.kind == "confirm":
        return questionary.confirm(label, default=bool(q.default),
                                   instruction=f"({printable(q.help)}) " + ("(Y/n) " if q.default else "(y/N) ") if q.help else None)
    raise ValueError(f"unknown question kind {q.kind!r}")
