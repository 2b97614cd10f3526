"""The full-screen wizard: one screen per step, over the step model in wizard/steps.py.

Screens are views of the one `Answers` object the app holds: going Back builds the screen
again from the answers, so no state hides in widgets. Work that may take a moment (reading a
large model) runs in a thread worker that posts a message; the conversion itself runs as the
child process of wizard/runner.py. The app never imports TensorFlow.

With --dryrun the last step is Print: the app exits with the command and run_app() prints it
after the screen is restored, so stdout carries the command and nothing else.

Start-up time is a goal: this module holds the app, what every step screen shares and the first
step (Model); the later steps are in wizard/screens.py, imported when the wizard first leaves the
Model step.
"""

from __future__ import annotations

import sys

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from .steps import Answers
from .ui.base import KeyLine, NavButton, StepScreen  # noqa: F401  (importable from here)
from .ui.model import ModelScreen, PathSuggester  # noqa: F401

CSS = """
Screen { layout: vertical; }
#steps { height: 1; padding: 0 1; background: $panel; }
#help { padding: 0 1; color: $text-muted; height: auto; max-height: 4; }
#body { height: 1fr; padding: 0 1; }
#error { height: auto; padding: 0 1; color: $error; }
#error.ok { color: $success; }
#nav { height: 1; align-horizontal: right; padding: 0 1; }
#nav NavButton { margin-left: 2; }
.label { margin-top: 1; text-style: bold; }
.qhelp { color: $text-muted; }
.qerror { color: $error; height: auto; }
Input, Select, SelectionList { width: 1fr; max-width: 72; }
Input.-textual-compact { background: $boost; }
SelectionList { height: auto; max-height: 6; }
#tree { height: 1fr; min-height: 5; border: none; }
#detection { height: auto; max-height: 5; margin-top: 1; }
.section { margin-top: 1; text-style: bold; }
.teach { border-left: thick $accent; padding-left: 1; margin-bottom: 1; }
.command { background: $boost; padding: 0 1; }
#log { height: 1fr; min-height: 4; }
.ok { color: $success; }
.bad { color: $error; }
"""


class WizardApp(App[object]):
    """Exits with the command to print (str), a finished run's exit code (int), or None (quit)."""

    TITLE = "tfwizard"
    CSS = CSS
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, model: str | None = None, *, dryrun: bool = False):
        super().__init__()
        self.answers = Answers(model=model or "")
        self.dryrun = dryrun
        self.report: dict | None = None  # the last run's report.json
        self.conversion = None  # the wizard.runner.ConversionRun of the Run step, once started
        self.teaching = False  # the guided demo is on
        self.netron: dict[str, str | None] = {}  # model path → URL of its Netron server, None while starting
        self.background = None  # wizard.analysis.Background: `inspect --deep` of the picked model, once one is

    def get_default_screen(self) -> Screen:
        # The first step is the app's first screen, not one pushed over Textual's blank default:
        # that blank screen cost a measurable part of the start-up, and with it under the Model step
        # the file tree was mounted before the first frame was drawn. switch_screen() replaces the
        # top screen and drops the result callback that push_screen() gives it; give this one the
        # same, or the first switch fails (IndexError, Textual issue #2650).
        screen = ModelScreen()
        screen._push_result_callback(self, None)
        return screen

    def on_served(self, message) -> None:  # a screens.Served: a Netron server started, or failed to
        from .screens import NetronView

        if message.url:
            self.netron[message.path] = message.url
        else:
            self.netron.pop(message.path, None)  # failed: a press may try again
        for view in self.screen.query(NetronView):
            if view.path == message.path:
                view.show(message)

    @property
    def analysis(self):
        """The wizard.analysis.Analysis of the answers' model, once one was picked."""
        return self.background.current if self.background else None

    def analyse(self) -> None:
        """Start `inspect --deep` of the answers' model in the background, unless it runs or answered
        already for this model, tag, signature and trust. Never waits for it."""
        if self.background is None:  # imported with the first model, not before the first screen
            from .analysis import Background

            self.background = Background()
        analysis = self.background.start(self.answers, done=self._answered)
        if analysis is not None and analysis.result is not None:  # answered before (the model was read again)
            self.answers.deep = analysis.result

    def cancel_analysis(self) -> None:
        if self.background is not None:
            self.background.cancel()

    def _answered(self, analysis) -> None:  # in the analysis thread
        if analysis.cancelled or not self.is_running:
            return  # nobody to tell
        try:
            self.call_from_thread(self._analysed, analysis)
        except RuntimeError:
            pass  # the app has ended meanwhile

    def _analysed(self, analysis) -> None:
        if analysis is not self.analysis or analysis.cancelled:
            return  # an answer for another model, or one the user went back from
        if analysis.result is not None:
            self.answers.deep = analysis.result
        from .screens import Verdicts

        for verdicts in self.screen.query(Verdicts):
            verdicts.update_verdicts()
        if hasattr(self.screen, "analysed"):
            self.screen.analysed()

    def on_unmount(self) -> None:
        self.cancel_analysis()  # never leave a TensorFlow child behind
        if self.netron:  # the Netron servers end with the app (imported only if one was started)
            from .view import stop

            for url in filter(None, self.netron.values()):  # None: still starting
                stop(url)

    def go(self, step: str) -> None:
        from .screens import SCREENS

        self.switch_screen(SCREENS[step]())

    def action_quit(self) -> None:
        if getattr(self.screen, "STEP", None) == "run" and self.conversion.returncode is None:
            self.screen.action_cancel()  # never leave a converting child behind
            return
        if self.report is not None:  # a run finished (quitting from its result, or after going back)
            self.exit(int(self.report.get("exit_code", 1)))
            return
        self.exit(None)


def run_app(model: str | None, *, dryrun: bool) -> int:
    app = WizardApp(model, dryrun=dryrun)
    try:
        result = app.run()
    finally:  # however the app ended, a conversion it started must not go on writing
        app.cancel_analysis()
        if app.conversion is not None:
            app.conversion.cancel()
    if isinstance(result, str):  # Print: the command, alone on stdout
        print(result)
        return 0
    if isinstance(result, int):  # quit after a run: its exit code, and where the output is
        print(f"tfwizard: output in {app.answers.options().output_dir} (report.json there)", file=sys.stderr)
        return result
    print("tfwizard: quit; nothing written", file=sys.stderr)
    return 130
