"""The wizard's steps after the first (Graph … Result), imported when the wizard leaves the Model step.

See wizard/app.py for the app and wizard/ui/ for what every step screen shares: each screen is a view of the
app's one `Answers`, built again from it when the step is shown.
"""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Label, Static

from engine.report import tolerance_text, verification_text
from engine.errors import UserError
from engine.text import human_size, printable

from . import steps
from .ui.base import NavButton, StepScreen
from .ui.model import ModelScreen, _shape
from .shown import shown, shown_cell
from .steps import Answers, Question

class QuestionForm(Vertical):
    """The questions of one step, rebuilt when an answer changes which questions there are."""

    DEFAULT_CSS = "QuestionForm { height: auto; }"

    class Answered(Message):
        def __init__(self, key: str, value) -> None:
            super().__init__()
            self.key, self.value = key, value

    def __init__(self, step: str, answers: Answers, **kwargs):
        super().__init__(**kwargs)
        self.step, self.answers = step, answers
        self.prefix = "" if step != "check" else "check-"  # widget ids stay unique on a screen with two forms
        self.asked: list[Question] = []

    def compose(self) -> ComposeResult:
        self.asked = steps.questions(self.step, self.answers)
        for n, q in enumerate(self.asked):
            if q.kind != "confirm":
                yield Label(shown(q.label), classes="label")
            yield _widget_for(q, q.default, f"{self.prefix}q{n}")
            if q.help:
                yield Static(shown(q.help), classes="qhelp", markup=False)
            error = Static("", id=f"{self.prefix}q{n}-error", classes="qerror", markup=False)
            error.display = False
            yield error

    def _show(self, n: int, error: str | None) -> None:
        widget = self.query_one(f"#{self.prefix}q{n}-error", Static)
        widget.update(shown(error or ""))
        widget.display = bool(error)

    def first_error(self) -> str | None:
        for n, q in enumerate(self.asked):
            error = q.validate(self.answers.get(q.key))
            if error:
                self._show(n, error)
                self.query_one(f"#{self.prefix}q{n}").focus()
                return f"{q.label}: {error}"
        return None

    async def _answer(self, widget_id: str | None, value) -> None:
        number = (widget_id or "").removeprefix(f"{self.prefix}q")
        if not widget_id or not widget_id.startswith(f"{self.prefix}q") or not number.isdigit():
            return
        n = int(number)
        q = self.asked[n]
        if self.answers.get(q.key) == value:
            return
        try:
            self.answers.apply(q.key, value)  # a new tag or signature re-reads the model
        except UserError as e:
            self._show(n, str(e))
            return
        self._show(n, q.validate(value))
        self.post_message(self.Answered(q.key, value))
        if [x.key for x in steps.questions(self.step, self.answers)] != [x.key for x in self.asked]:
            await self.recompose()
            index = next(i for i, x in enumerate(self.asked) if x.key == q.key)
            self.query_one(f"#{self.prefix}q{index}").focus()

    async def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        await self._answer(event.input.id, event.value)

    async def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        await self._answer(event.select.id, event.value)

    async def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        event.stop()
        await self._answer(event.selection_list.id, list(event.selection_list.selected))

    async def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        await self._answer(event.checkbox.id, event.value)


def _widget_for(q: Question, value, widget_id: str):
    from textual.widgets import Checkbox, Select, SelectionList

    if q.kind == "select":
        return Select([(shown(title), v) for v, title in q.choices], value=value, allow_blank=False, id=widget_id, compact=True)
    if q.kind == "multi":
        return SelectionList(*[(shown(title), v, v in value) for v, title in q.choices], id=widget_id, compact=True)
    if q.kind == "confirm":
        return Checkbox(shown(q.label), value=bool(value), id=widget_id, compact=True)
    return Input(str(value), id=widget_id, compact=True, select_on_focus=False)


class QuestionScreen(StepScreen):
    """A step whose body is its questions (wizard/steps.py); Next waits until they are answered."""

    def body(self) -> ComposeResult:
        yield QuestionForm(self.STEP, self.answers)

    def problem(self) -> str | None:
        forms = list(self.query(QuestionForm))
        return next((e for f in forms if (e := f.first_error())), None)


class Served(Message):
    """Netron is serving `path` at `url`, or could not (error); posted to the app, which owns the servers."""

    def __init__(self, path: str, url: str | None = None, error: str | None = None) -> None:
        super().__init__()
        self.path, self.url, self.error = path, url, error


class NetronView(Horizontal):
    """A "View in Netron" button and, beside it, the URL where Netron (on 127.0.0.1) shows `path`.

    One server per path for the app's lifetime; the app stops them on exit. netron and wizard.view
    are imported only when the button is pressed."""

    DEFAULT_CSS = """
    NetronView { height: 1; width: 1fr; }
    NetronView Static { width: 1fr; margin-left: 2; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    NetronView Static.bad { color: $error; }
    """

    def __init__(self, path: str, **kwargs):
        super().__init__(**kwargs)
        self.path = path

    def compose(self) -> ComposeResult:
        yield NavButton("View in Netron", compact=True)
        starting = self.path in self.app.netron and not self.app.netron[self.path]
        yield Static(shown("starting Netron…" if starting else self.app.netron.get(self.path, "")), markup=False)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if self.path in self.app.netron:
            return  # served (its URL is shown) or starting: one server per path
        self.app.netron[self.path] = None  # starting; the app drops it again if Netron fails
        event.button.disabled = True  # until the worker answers
        self.query_one(Static).update("starting Netron…")
        self._serve()

    @work(thread=True, group="netron")
    def _serve(self) -> None:
        from .view import serve

        try:  # to the app, not to self: a server started after its screen was left is still stopped on exit
            self.app.post_message(Served(self.path, url=serve(self.path)))
        except UserError as e:
            self.app.post_message(Served(self.path, error=str(e)))
        except Exception as e:  # Netron failing is a message, never a crash
            self.app.post_message(Served(self.path, error=f"Netron: {type(e).__name__}: {e}"))

    def show(self, served: Served) -> None:
        self.query_one(NavButton).disabled = False
        url = self.query_one(Static)
        url.update(shown(served.url or f"✘ {served.error}"))
        url.set_class(not served.url, "bad")


# --- 2. Graph -----------------------------------------------------------------------------------------


class GraphScreen(QuestionScreen):
    STEP = "graph"
    AUTO_FOCUS = "Select, Checkbox"  # the questions, if any; else the body (on_mount)
    DEFAULT_CSS = "#outline { text-wrap: nowrap; text-overflow: ellipsis; }"

    def body(self) -> ComposeResult:
        from textual.widgets import DataTable

        info = self.answers.info
        yield QuestionForm(self.STEP, self.answers)
        for title, tensors in (("Inputs", info.inputs), ("Outputs", info.outputs)):
            yield Label(title, classes="section")
            table = DataTable(show_cursor=False, zebra_stripes=True, id=title.lower())
            table.add_column("name")
            table.add_column("dtype", key="dtype")
            table.add_column("shape", key="shape")
            table.add_column("note")
            for t in tensors:
                table.add_row(shown_cell(t.name), t.dtype or "?", _shape(t.shape), shown_cell(t.note), key=t.name)
            table.styles.height = len(tensors) + 1
            yield table
        yield Label("Can each target take it?", classes="section")
        yield Verdicts()
        # Before the op inventory, which can run to many lines for a big graph.
        yield Label("Outline: inputs → main blocks → outputs", classes="section")
        yield Static(shown(self.answers.outline), id="outline", markup=False)
        kind = "Layers" if info.op_kind == "keras_layer" else "Ops"
        yield Label(f"{kind}: {sum(info.ops.values())} in {len(info.ops)} types", classes="section")
        yield Static(shown(", ".join(f"{op}×{n}" for op, n in info.ops.items())), markup=False)

    def buttons(self) -> ComposeResult:
        yield NetronView(self.answers.model, id="netron")
        yield from super().buttons()

    def on_mount(self) -> None:
        if self.focused is None:  # arrows scroll the body; focusing a table would scroll it past its title
            self.query_one("#body").focus()
        self.app.analyse()  # back from the Model step, which cancelled it: again (or the cached answer)
        self.analysed()

    def analysed(self) -> None:
        """The frozen graph's output dtypes and shapes, once the analysis has them (static inspect may not)."""
        from textual.widgets import DataTable

        deep = self.answers.deep
        if deep is None:
            return
        table = self.query_one("#outputs", DataTable)
        for o in deep["outputs"]:
            if o["name"] in table.rows:
                table.update_cell(o["name"], "dtype", o["dtype"])
                table.update_cell(o["name"], "shape", _shape(o["shape"]))

    @on(QuestionForm.Answered)
    async def _reselect(self, event: QuestionForm.Answered) -> None:
        if event.key in ("tag", "signature", "trust_model"):
            self.app.analyse()  # another graph, or now allowed to load it
        if event.key in ("tag", "signature"):  # other inputs and outputs: show them
            await self.recompose()
        else:
            self.query_one(Verdicts).update_verdicts()


class Verdicts(Vertical):
    """Can each target take it? The static verdicts, then the frozen graph's when the background
    analysis (wizard.analysis) answers; meanwhile it counts the seconds. Updated in place."""

    DEFAULT_CSS = "Verdicts { height: auto; }"
    MARKS = {"ok": ("✔", "ok"), "blocked": ("✘", "bad"), "later": ("?", "")}

    def compose(self) -> ComposeResult:
        for n, _ in enumerate(self._verdicts()):
            yield Static("", id=f"verdict-{n}", markup=False)

    def on_mount(self) -> None:
        self.update_verdicts()
        self.set_interval(1, self.update_verdicts)

    def _verdicts(self):
        from .analysis import status

        a = self.app.answers
        return steps.preflight_verdicts(a.info, *status(self.app.analysis, a.info, a.trust_model))

    def update_verdicts(self) -> None:
        for n, (title, verdict, text) in enumerate(self._verdicts()):
            mark, style = self.MARKS[verdict]
            line = self.query_one(f"#verdict-{n}", Static)
            line.update(shown(f"{mark} {title}: {text}"))
            line.set_classes(style)


# --- 3.–5. Shapes, Preprocessing, Targets -----------------------------------------------------------------


class ShapesScreen(QuestionScreen):
    STEP = "shapes"


class PreprocessScreen(QuestionScreen):
    STEP = "preprocess"

    def body(self) -> ComposeResult:
        yield QuestionForm(self.STEP, self.answers)
        yield Label("What the converted model does first", classes="section")
        yield Static(shown(steps.preprocessing_preview(self.answers)), id="preview", classes="command", markup=False)

    @on(QuestionForm.Answered)
    def _update_preview(self) -> None:
        self.query_one("#preview", Static).update(shown(steps.preprocessing_preview(self.answers)))


class TargetsScreen(QuestionScreen):
    STEP = "targets"

    def body(self) -> ComposeResult:
        yield from super().body()
        yield Label("Can each target take it?", classes="section")
        yield Verdicts()

    def on_mount(self) -> None:
        self.app.analyse()

    def analysed(self) -> None:  # the Verdicts below say it; the targets' notes do when the step is shown again
        pass


# --- 6. Review ----------------------------------------------------------------------------------------


class ReviewScreen(QuestionScreen):
    STEP = "review"
    BINDINGS = [Binding("ctrl+y", "copy", "Copy command")]

    def body(self) -> ComposeResult:
        command, upstream = self._commands()
        yield QuestionForm(self.STEP, self.answers)
        if self.answers.checking:  # opened by the button below, kept when coming back
            yield QuestionForm("check", self.answers, id="check")
        else:
            yield Button("Check with my own input file, or time each target…", id="check-open", compact=True)
        yield Label("The command", classes="section")
        yield Static(shown(command), id="command", classes="command", markup=False)
        yield Label("The same with the upstream tools", classes="section")
        yield Static(shown(upstream), id="upstream", markup=False)

    def problem(self) -> str | None:
        """The same gate as --plain's review and `tfwizard convert` before TensorFlow (steps.checked_options)."""
        problem = super().problem()
        if problem:
            return problem
        try:
            steps.checked_options(self.answers)
        except UserError as e:
            return str(e)
        return None

    def buttons(self) -> ComposeResult:
        yield NavButton("Back", id="back", compact=True)
        yield NavButton("Copy", id="copy", compact=True)
        yield NavButton("Print command", id="print", variant="default" if not self.app.dryrun else "primary", compact=True)
        if not self.app.dryrun:
            yield NavButton("Run", id="next", variant="primary", compact=True)

    def _commands(self) -> tuple[str, str]:
        """The command and the upstream tools' lines for the answers as they stand (or why not yet)."""
        from engine.plan import upstream_lines

        try:
            options = self.answers.options()
        except UserError as e:
            return f"(not yet: {e})", str(e)
        try:
            upstream = "\n".join(upstream_lines(options, self.answers.info))
        except UserError as e:
            upstream = str(e)
        return options.command(), upstream

    @on(QuestionForm.Answered)
    def _update(self) -> None:  # the output directory is in every line
        command, upstream = self._commands()
        self.query_one("#command", Static).update(shown(command))
        self.query_one("#upstream", Static).update(shown(upstream))

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self._commands()[0])
        self.notify("Copied (where the terminal allows it); the text is also selectable with the mouse.")

    @on(Button.Pressed, "#copy")
    def _copy_pressed(self) -> None:
        self.action_copy()

    @on(Button.Pressed, "#check-open")
    async def _check_pressed(self) -> None:
        """Check with my own input file, or time each target: the check's questions, above the command."""
        self.answers.checking = True
        opener = self.query_one("#check-open", Button)
        await opener.parent.mount(QuestionForm("check", self.answers, id="check"), after=opener)
        await opener.remove()
        self.query_one("#check-q0").focus()

    @on(Button.Pressed, "#print")
    def _print_pressed(self) -> None:
        problem = self.problem()
        if problem:
            self.show_error(problem)
            return
        self.app.exit(self.answers.options().command())

    def action_next(self) -> None:
        if self.app.dryrun:
            self._print_pressed()
        else:
            super().action_next()


# --- 7. Run -------------------------------------------------------------------------------------------


class Progress(Message):
    def __init__(self, event: dict) -> None:
        super().__init__()
        self.event = event


class RunScreen(StepScreen):
    STEP = "run"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self):
        super().__init__()
        from .runner import ConversionRun

        self.run = self.app.conversion = ConversionRun(self.answers.options())
        self.targets = list(self.run.options.targets)

    def body(self) -> ComposeResult:
        from textual.widgets import DataTable, ProgressBar, RichLog

        yield Static(shown(self.run.command), classes="command", markup=False)
        yield ProgressBar(total=1 + len(self.targets), show_eta=False, id="progress")
        table = DataTable(show_cursor=False, id="targets")
        for column in ("target", "status", "seconds", "check"):
            table.add_column(column, key=column)
        for t in self.targets:
            table.add_row(steps.target_title(t), "waiting", "", "", key=t)
        table.styles.height = len(self.targets) + 1
        yield table
        yield RichLog(id="log", wrap=True, markup=False)

    def buttons(self) -> ComposeResult:
        yield NavButton("Cancel", id="cancel", variant="error", compact=True)
        yield NavButton("Results", id="next", variant="primary", compact=True, disabled=True)

    def on_mount(self) -> None:
        self._convert()

    @work(thread=True, group="run")
    def _convert(self) -> None:
        self.run.start()
        for event in self.run.events():
            self.post_message(Progress(event))
        self.post_message(Progress({"event": "exit", "code": self.run.returncode}))

    def on_progress(self, message: Progress) -> None:
        from textual.widgets import DataTable, ProgressBar, RichLog

        event, log = message.event, self.query_one("#log", RichLog)
        table, bar = self.query_one("#targets", DataTable), self.query_one("#progress", ProgressBar)
        kind, target = event.get("event"), event.get("target")
        if kind in ("stage", "log", "output"):
            log.write(printable((f"[{target}] " if target else "") + str(event.get("message", ""))))
        if kind == "stage" and target:
            if bar.progress < 1:
                bar.advance(1)  # the model is loaded once the first target starts
            table.update_cell(target, "status", event["stage"] + "…", update_width=True)
        elif kind == "target":
            bar.advance(1)
            table.update_cell(target, "status", event["status"], update_width=True)
            table.update_cell(target, "seconds", f"{event.get('seconds') or 0:.1f}")
            check, passed = verification_text(event.get("verification"))
            # The verdict in the table (a long cell would scroll it and hide rows), the numbers in the log.
            table.update_cell(target, "check", steps.VERDICTS[passed], update_width=True)
            log.write(printable(f"[{target}] {check}"))
        elif kind == "exit":
            self._finished(event["code"])

    def check_action(self, action: str, parameters) -> bool:
        # Once the run has ended there is nothing to cancel: esc leaves the key line too.
        return action != "cancel" or (self.run.returncode is None and not self.run.cancelled)

    def _finished(self, code: int) -> None:
        self.query_one("#cancel", Button).disabled = True
        self.refresh_bindings()
        if self.run.cancelled:
            self.show_error("Cancelled: nothing was written. ctrl+p goes back to the review.")
            return
        self.app.report = self.run.report()
        if self.app.report is None:
            self.show_error(f"The conversion stopped (exit {code}); the log above says why. Nothing was written.")
            return
        verdict = {0: "Done.", 1: "Some targets failed.", 3: "Some results differ from TensorFlow."}.get(code, "")
        self.show_error(f"{verdict} Press Enter or ctrl+n for the results.", ok=code == 0)
        self.query_one("#next", Button).disabled = False
        self.query_one("#next", Button).focus()

    def action_cancel(self) -> None:
        if self.run.returncode is None and not self.run.cancelled:
            self.show_error("Cancelling… removing partial output")
            self._cancel()

    @work(thread=True, group="cancel")
    def _cancel(self) -> None:
        self.run.cancel()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def problem(self) -> str | None:
        return None if self.app.report is not None and self.run.returncode is not None else "the conversion is not finished"

    def action_back(self) -> None:
        if self.run.returncode is None and self.run.process is not None:
            self.show_error("Still converting: Cancel (Esc) first.")
            return
        self.app.go("review")


# --- 8. Result ----------------------------------------------------------------------------------------


class ResultScreen(StepScreen):
    STEP = "result"

    def body(self) -> ComposeResult:
        from textual.widgets import DataTable

        report, options = self.app.report or {"targets": []}, self.answers.options()
        output_dir, results = options.output_dir, steps.outcomes(report, options)
        table = DataTable(show_cursor=False, id="results")
        table.add_columns("target", "status", "size", "max abs", "max rel", "tolerance", "check")
        for r in results:
            v = r.verification
            numbers = ([f"{v['max_abs_diff']:.1e}", f"{v['max_rel_diff']:.1e}", tolerance_text(v)]
                       if "max_abs_diff" in v else ["", "", ""])
            table.add_row(r.title, r.status, human_size(r.size), *numbers, r.verdict)
        table.styles.height = len(results) + 1
        yield table
        if report.get("benchmark"):
            yield Label("Speed and size per target", classes="section")
            yield Static(shown(steps.benchmark_chart(report["benchmark"])), id="benchmark", markup=False)
        for r in results:
            yield Label(f"{r.title}: {r.status}", classes="section")
            yield Static(shown(r.message or r.check), classes="ok" if r.passed else "bad" if r.passed is False else "",
                         markup=False)
            for name, size in r.files.items():
                yield Static(shown(f"{Path(output_dir) / name}  ({size:,} bytes)"), markup=False)
            if r.snippet:
                yield Static(shown(r.snippet), classes="command", markup=False)
                yield NetronView(r.model_file, id=f"netron-{r.target}")
        yield Label("Reproduce it", classes="section")
        yield Static(shown(report.get("command", "")), classes="command", markup=False)

    def buttons(self) -> ComposeResult:
        yield NavButton("Back", id="back", compact=True)
        yield NavButton("Quit", id="quit", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#quit", Button).focus()

    @on(Button.Pressed, "#quit")
    def _quit_pressed(self) -> None:
        self.app.action_quit()

    def action_next(self) -> None:
        self.app.action_quit()  # Next from the last step is finishing

    def action_back(self) -> None:
        self.app.go("review")


SCREENS = {"model": ModelScreen, "graph": GraphScreen, "shapes": ShapesScreen, "preprocess": PreprocessScreen,
           "targets": TargetsScreen, "review": ReviewScreen, "run": RunScreen, "result": ResultScreen}
