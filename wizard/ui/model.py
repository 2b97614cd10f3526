"""Step 1, the model: a path with suggestions, a file tree, and the model read without TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Button, Input, Label, Static

from engine.errors import UserError

from .. import steps
from ..shown import shown
from .base import NavButton, StepScreen


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
        from ..demo import demo_answers

        try:
            self.app.answers = demo_answers()
        except UserError as e:
            self.show_error(str(e))
            return
        self.app.teaching = True
        self.app.go("model")

    def on_mount(self) -> None:
        self.app.cancel_analysis()  # back at the Model step: the analysis of the model left is stopped
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
        self.call_after_refresh(self.app.analyse)  # TensorFlow's view of it, in the background, after a frame
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
