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

import os
import sys
from pathlib import Path

from rich.style import Style as RichStyle
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.suggester import Suggester
from textual.widget import Widget
# Only what the first screen needs is imported here (start-up time is a goal); later screens
# import their widgets when they are built.
from textual.widgets import Button, Input, Label, Static

from engine.errors import UserError

from . import steps
from .shown import shown
from .steps import STEP_KEYS, STEPS, Answers

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

    def on_unmount(self) -> None:
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


# --- the parts every step screen shares -------------------------------------------------------------


class StepScreen(Screen):
    STEP = ""
    AUTO_FOCUS = "Input, Select, SelectionList, Checkbox, DataTable, #next"  # the first question, else Next
    BINDINGS = [Binding("ctrl+n", "next", "Next"), Binding("ctrl+p", "back", "Back")]

    @property
    def answers(self) -> Answers:
        return self.app.answers

    def compose(self) -> ComposeResult:
        yield Static(_breadcrumb(self.STEP), id="steps")
        yield Static(STEPS[STEP_KEYS.index(self.STEP)].help, id="help")
        with VerticalScroll(id="body"):
            if self.app.teaching:  # the guided demo explains each step at more length
                step = STEPS[STEP_KEYS.index(self.STEP)]
                intro = steps.DEMO_INTRO + "\n\n" if self.STEP == "model" else ""
                yield Static(shown(intro + step.teach), classes="teach", markup=False)
            yield from self.body()
        yield Static("", id="error")
        with Horizontal(id="nav"):
            yield from self.buttons()
        yield KeyLine()

    def body(self) -> ComposeResult:
        """The step's own widgets, between its help and its buttons."""
        yield from ()

    def buttons(self) -> ComposeResult:
        yield NavButton("Back", id="back", compact=True)
        yield NavButton("Next", id="next", variant="primary", compact=True)

    def problem(self) -> str | None:
        """Why Next can't go on yet, or None."""
        return None

    def show_error(self, text: str, *, ok: bool = False) -> None:
        line = self.query_one("#error", Static)
        line.update(shown(text))  # errors name nodes of the model
        line.set_class(ok, "ok")  # the same line says when things went well

    def action_next(self) -> None:
        problem = self.problem()
        if problem:
            self.show_error(problem)
            return
        self.show_error("")
        self.app.go(STEP_KEYS[STEP_KEYS.index(self.STEP) + 1])

    def action_back(self) -> None:
        index = STEP_KEYS.index(self.STEP)
        if index:
            self.app.go(STEP_KEYS[index - 1])

    @on(Button.Pressed, "#next")
    def _next_pressed(self) -> None:
        self.action_next()

    @on(Button.Pressed, "#back")
    def _back_pressed(self) -> None:
        self.action_back()


class KeyLine(Widget):
    """The current screen's visible key bindings on the bottom line, as Textual's Footer shows them.

    Footer mounts a widget per key and mounts them again whenever the bindings change (focus moves,
    a screen is switched): measured, the largest single cost of drawing the first screen. This is
    one widget that draws the same line as text; a click on a key presses it, as on Footer.
    """

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"keyline--key", "keyline--description"}
    DEFAULT_CSS = """
    KeyLine { dock: bottom; height: 1; color: $footer-foreground; background: $footer-background; }
    KeyLine > .keyline--key { color: $footer-key-foreground; background: $footer-key-background; text-style: bold; }
    KeyLine > .keyline--description { color: $footer-description-foreground; background: $footer-description-background; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._keys: list[tuple[int, int, str]] = []  # (first column, end column, key) of each key shown

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, lambda screen: self.refresh())

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keyline--key")
        description_style = self.get_component_rich_style("keyline--description")
        line, self._keys, actions = Text(no_wrap=True, overflow="ellipsis"), [], set()
        for _, binding, enabled, _ in self.screen.active_bindings.values():
            if not binding.show or binding.action in actions:  # one key per action, as Footer does
                continue
            actions.add(binding.action)
            start, dim = len(line), RichStyle(dim=not enabled)
            line.append(f" {self.app.get_key_display(binding)} ", key_style + dim)
            line.append(f"{binding.description} ", description_style + dim)
            self._keys.append((start, len(line), binding.key))
        return line

    def on_click(self, event) -> None:
        for start, end, key in self._keys:
            if start <= event.x < end:
                self.app.simulate_key(key)


class NavButton(Button, inherit_css=False):
    """A compact Button styled by only the rules this app uses of Button's stylesheet: the default,
    primary and error variants, compact (no border), as in Textual 8.2's Button.DEFAULT_CSS.

    Button's own stylesheet (7 kB: every variant, the flat and ANSI styles, the borders of the
    non-compact button) made it the costliest widget of the first screen to start; this draws the
    same. Without inherited CSS its CSS type is NavButton alone: select it as `NavButton`.
    """

    DEFAULT_CSS = """
    NavButton {
        width: auto;
        min-width: 16;
        height: auto;
        line-pad: 1;
        text-align: center;
        content-align: center middle;
        pointer: pointer;
        text-style: bold;
        color: $button-foreground;
        background: $surface;
        border: none;

        &:disabled { text-opacity: 0.6; pointer: not-allowed; }
        &:focus { text-style: $button-focus-text-style; background-tint: $foreground 5%; }
        &:hover { background: $surface-darken-1; }
        &.-active { background: $surface; tint: $background 30%; }
        &.-primary {
            color: $button-color-foreground;
            background: $primary;
            &:hover { background: $primary-darken-2; }
            &.-active { background: $primary; }
        }
        &.-error {
            color: $button-color-foreground;
            background: $error;
            &:hover { background: $error-darken-1; }
            &.-active { background: $error; }
        }
    }
    """


def _breadcrumb(current: str) -> str:
    parts = [f"[reverse] {s.title} [/]" if s.key == current else s.title for s in STEPS]
    return " › ".join(parts)


# --- 1. Model -----------------------------------------------------------------------------------------


class PathSuggester(Suggester):
    """Completes the last path component from the file system, as a shell would."""

    def __init__(self):
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        head, slash, stem = value.rpartition("/")
        directory = Path(os.path.expanduser(head or "/")) if slash else Path(".")
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return None
        for name in names:
            if name.startswith(stem) and name != stem and (stem.startswith(".") or not name.startswith(".")):
                return value + name[len(stem):] + ("/" if (directory / name).is_dir() else "")
        return None


def model_tree(**kwargs):
    """A DirectoryTree of the working directory showing only directories and files that may be models."""
    from textual.widgets import DirectoryTree

    class ModelTree(DirectoryTree):
        def filter_paths(self, paths):
            return [p for p in paths if not p.name.startswith(".") and
                    (p.is_dir() or p.suffix in steps.MODEL_SUFFIXES or p.name == "checkpoint")]

    return ModelTree(Path.cwd(), **kwargs)


class Loaded(Message):
    """A model was read (info) or could not be (error), in a worker."""

    def __init__(self, path: str, info=None, outline: str = "", error: str | None = None) -> None:
        super().__init__()
        self.path, self.info, self.outline, self.error = path, info, outline, error


class ModelScreen(StepScreen):
    STEP = "model"

    def body(self) -> ComposeResult:
        q = steps.questions("model", self.answers)[0]
        yield Label(q.label, classes="label")
        yield Input(self.answers.model, placeholder=q.help, id="path", suggester=PathSuggester(), compact=True)
        yield Static("", id="detection", markup=False)

    def buttons(self) -> ComposeResult:
        if not self.app.teaching:
            yield NavButton("Guided demo", id="demo", compact=True)
        yield NavButton("Next", id="next", variant="primary", compact=True)

    @on(Button.Pressed, "#demo")
    def _demo(self) -> None:
        from .demo import demo_answers

        try:
            self.app.answers = demo_answers()
        except UserError as e:
            self.show_error(str(e))
            return
        self.app.teaching = True
        self.app.go("model")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()
        # After the first paint: the file tree must not delay the screen. (The model is read in a
        # worker, started by the path Input's Changed event for its first value.)
        self.call_after_refresh(self._after_first_paint)

    def _after_first_paint(self) -> None:
        self.query_one("#body").mount(model_tree(id="tree"))

    @on(Input.Changed, "#path")
    def _path_changed(self, event: Input.Changed) -> None:
        self._read(event.value)

    def _read(self, path: str) -> None:
        detection = self.query_one("#detection", Static)
        if self.answers.loaded(path):  # back at this step, or the demo's model: read already
            detection.set_classes("ok")
            detection.update(shown(f"✔ {_model_summary(self.answers.info)}"))
            return
        detection.update("reading…" if path.strip() else "")
        detection.set_classes("")
        if path.strip():
            self._load(path)

    @on(Input.Submitted, "#path")
    def _path_submitted(self) -> None:
        self.action_next()

    def on_directory_tree_file_selected(self, event) -> None:
        self._pick(event.path)

    def on_directory_tree_directory_selected(self, event) -> None:
        if (event.path / "saved_model.pb").is_file():
            self._pick(event.path)

    def _pick(self, path: Path) -> None:
        self.query_one("#path", Input).value = _display_path(path)

    @work(thread=True, exclusive=True, group="load")
    def _load(self, path: str) -> None:
        try:
            self.post_message(Loaded(path, *steps.load_model(path)))
        except UserError as e:
            self.post_message(Loaded(path, error=str(e)))
        except Exception as e:  # a file that breaks our reader is still a message, never a crash
            self.post_message(Loaded(path, error=f"cannot read {path}: {type(e).__name__}: {e}"))

    def on_loaded(self, message: Loaded) -> None:
        if message.path != self.query_one("#path", Input).value:
            return  # an answer to an older keystroke
        detection = self.query_one("#detection", Static)
        if message.info is None:
            detection.update(shown(f"✘ {message.error}"))
            detection.set_classes("bad")
            return
        self.answers.adopt(message.path, message.info, message.outline)
        detection.set_classes("ok")
        detection.update(shown(f"✔ {_model_summary(message.info)}"))
        self.show_error("")

    def problem(self) -> str | None:
        path = self.query_one("#path", Input).value
        if not self.answers.loaded(path):
            try:  # Next pressed before the worker answered: read it now (inspect is fast)
                self.answers.load(path)
            except UserError as e:
                return str(e)
        return None


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _model_summary(info) -> str:
    ins = ", ".join(f"{i.name} {_shape(i.shape)}" for i in info.inputs) or "none found"
    outs = ", ".join(o.name for o in info.outputs) or "none found"
    return f"{info.format_title}: {info.reason}\ninputs: {ins}\noutputs: {outs}"


def _shape(shape) -> str:
    return "[?]" if shape is None else f"[{steps.shape_text(shape)}]"
