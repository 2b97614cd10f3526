"""What every step screen shares: breadcrumb, help, the key line and the Back/Next buttons."""

from __future__ import annotations

from rich.style import Style as RichStyle
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Static

from .. import steps
from ..steps import STEP_KEYS, STEPS, Answers


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
                yield Static(intro + step.teach, classes="teach", markup=False)
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
        line.update(text)
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
