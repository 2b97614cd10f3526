"""--tensorboard-logdir DIR: the original graph and the prepared, frozen one (what every target
converts from) as TensorBoard graph events, in DIR/original and DIR/prepared: two runs side by side
in TensorBoard's Graphs tab (`tensorboard --logdir DIR`).

The worker is confined to the temporary output (engine.sandbox), so it writes the events there
(write_graphs, with TensorFlow); the parent moves them into DIR at the end (publish, no
TensorFlow). Event files have unique names, and a name that exists in DIR is never replaced, so DIR
may be a log directory that already holds other runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError

STAGING = ".tensorboard"  # inside the temporary output
RUNS = ("original", "prepared")


def check_logdir(logdir: str | None, model: str, output_dir: str) -> None:
    """Refuse a DIR that cannot take the events (no TensorFlow: plan() and the wizard call this)."""
    if not logdir:
        return
    flag = f"--tensorboard-logdir {logdir}"
    here = Path(logdir).resolve()
    model, out = Path(model).resolve(), Path(output_dir).resolve()
    if here == model or model in here.parents or here in model.parents:
        raise UserError(f"{flag}: is, contains or lies inside the model; choose a directory outside it")
    if here == out or out in here.parents:
        raise UserError(f"{flag}: is or lies inside -o, which tfwizard replaces on --force; choose a directory beside it")
    existing = next((p for p in [here, *here.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UserError(f"{flag}: {existing} is a file, not a directory; choose another log directory")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag}: {existing} is not writable; choose another log directory")


def original_graph(tf, detection, info):
    """The graph as the model file holds it: the GraphDef, the MetaGraph's, the chosen SavedModel meta
    graph's (a TF2 one keeps its functions), or for Keras the traced call of the model."""
    from .detect import Format
    from . import prepare

    fmt = detection.format
    if fmt in (Format.GRAPHDEF, Format.GRAPHDEF_TEXT, Format.CHECKPOINT):
        return prepare._read_graph_def(tf, detection.graph)
    if fmt is Format.METAGRAPH:
        from tensorflow.python.framework import meta_graph

        return meta_graph.read_meta_graph_file(str(detection.graph)).graph_def
    if fmt in (Format.SAVED_MODEL, Format.TF_HUB):
        from tensorflow.python.saved_model import loader_impl

        message = loader_impl.parse_saved_model(str(detection.path))
        return next(m.graph_def for m in message.meta_graphs if sorted(m.meta_info_def.tags) == sorted(info.tag or []))
    return prepare.traced_keras_graph(detection)


def write_graphs(tf, tmp: Path, original, prepared_graph_def) -> None:
    """Write both graphs as graph events under tmp/.tensorboard/<run>/ (the worker's side)."""
    for run, graph_def in zip(RUNS, (original, prepared_graph_def)):
        writer = tf.summary.create_file_writer(str(tmp / STAGING / run))
        with writer.as_default():
            tf.summary.graph(graph_def)
        writer.close()


def publish(tmp: Path, logdir: str) -> list[Path]:
    """Move the staged event files into logdir/<run>/ (the parent's side); never replace a file."""
    moved = []
    for run in RUNS:
        staged = tmp / STAGING / run
        if not staged.is_dir():
            continue
        target = Path(logdir) / run
        target.mkdir(parents=True, exist_ok=True)
        for event in sorted(staged.iterdir()):
            dest, n = target / event.name, 1
            while dest.exists():
                dest, n = target / f"{event.name}.{n}", n + 1
            os.replace(event, dest) if event.stat().st_dev == target.stat().st_dev else _copy(event, dest)
            moved.append(dest)
    return moved


def _copy(src: Path, dest: Path) -> None:
    import shutil

    shutil.copyfile(src, dest)
    src.unlink()
