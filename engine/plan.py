"""Everything about a conversion that can be known without TensorFlow: the model read and checked
against the options (plan), the upstream tools' commands, the output directory. --dryrun, the
wizard's Review and `tfwizard convert` (before its worker starts) all go through here."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from . import backends, user_code
from .detect import Detection, Format, detect
from .errors import UserError
from .inspect import ModelInfo, inspect
from .interface import final_inputs, final_outputs, preprocessed_inputs
from .options import ConversionOptions
from .text import shell_join, shell_quote
from . import output


def plan(options: ConversionOptions) -> tuple[Detection, ModelInfo]:
    """Everything that can be checked without TensorFlow; raises UserError on bad input."""
    from .availability import unavailable

    missing = unavailable(options.targets)
    if missing:  # an extra that is not installed: say which and how, before reading the model
        raise UserError(f"--to {','.join(options.targets)}: " + "; ".join(missing.values()))
    detection = detect(options.model, checkpoint=options.checkpoint)
    info = inspect(detection, tag=options.tag, signature=options.signature)
    if detection.format is Format.TFJS_LAYERS and (why := unavailable(("tfjs",))):
        raise UserError(f"{info.path}: a TF.js layers model is read with tensorflowjs' Keras loader, and here "
                        f"{why['tfjs']}")
    if info.code_risks and not options.trust_model:
        more = f" and {len(info.code_risks) - 1} more" if len(info.code_risks) > 1 else ""
        raise UserError(f"{info.path}: loading or running this model runs code or touches files it names ({info.code_risks[0]}{more}); "
                        "if you trust its source, pass --trust-model")
    user_code.check(options, info)  # --custom-objects, --load-op-library: trusted, present, needed
    check_graph(detection, info)
    from .tensorboard import check_logdir

    check_logdir(options.tensorboard_logdir, options.model, options.output_dir)
    inputs = final_inputs(info, options)
    preprocessed_inputs(inputs, options)
    if options.sample_inputs:  # (engine.sample_inputs imports numpy: only when there are some)
        from .sample_inputs import resolve

        resolve(options.sample_inputs, inputs)
    final_outputs(info, options, graph=_parsed_graph(detection))
    for target in options.targets:
        backends.get(target).check(options, info)  # the target's own options, before anything is converted
    return detection, info


def check_graph(detection, info: ModelInfo) -> None:
    """Refuse a graph TensorFlow would reject or crash on (engine.graph_checks), before it loads."""
    from .graph_checks import malformed

    graph = _parsed_graph(detection)
    if detection.format in (Format.SAVED_MODEL, Format.TF_HUB):
        graph = next((m.graph_def for m in detection.parsed.meta_graphs
                      if list(m.meta_info_def.tags) == list(info.tag)), None)
    why = malformed(graph) if graph is not None else None
    if why:
        raise UserError(f"{info.path}: the model is malformed: {why}; re-export it from TensorFlow")


def _parsed_graph(detection):
    """The GraphDef detect() parsed for graph formats (None for SavedModels and Keras)."""
    if detection.format is Format.METAGRAPH:
        return detection.parsed.graph_def
    if detection.format in (Format.GRAPHDEF, Format.GRAPHDEF_TEXT, Format.CHECKPOINT):
        return detection.parsed
    return None


def upstream_commands(options: ConversionOptions, info: ModelInfo) -> dict[str, str | None]:
    """Each target's upstream command as one shell line (None: no upstream tool does this directly)."""
    result = {}
    info = needed_inputs(options, info)
    for target in options.targets:
        backend = backends.get(target)
        # No upstream CLI can set a placeholder to a value (ovc refuses mo's 'name->value'), nor take
        # Keras custom objects (tf2onnx --keras, tensorflowjs_converter, tflite_convert load without them).
        argv = None if options.freeze or options.custom_objects else backend.upstream_command(options, info)
        line = shell_join(argv) if argv else None
        if line and not backend.upstream_creates_output_dir:
            line = f"mkdir -p {shell_quote(str(Path(options.output_dir, target)))} && {line}"
        result[target] = line
    return result


def needed_inputs(options: ConversionOptions, info: ModelInfo) -> ModelInfo:
    """info with only the inputs the chosen --output nodes of a graph depend on (data or control edges).

    An input only a cut-away output needs (a training graph's iterator handle) is pruned from the
    converted model (engine.prepare); the upstream commands must not name it either. Inputs the user
    named with --input or --freeze stay, so their checks still speak of them.
    """
    if not options.outputs or info.format not in ("graphdef", "graphdef_text", "checkpoint", "metagraph"):
        return info
    graph = _parsed_graph(detect(options.model, checkpoint=options.checkpoint))
    if graph is None:
        return info
    inputs_of = {n.name: [i.lstrip("^").split(":")[0] for i in n.input] for n in graph.node}
    seen, stack = set(), [o.split(":")[0] for o in options.outputs]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack += inputs_of.get(name, [])
    named = set(dict(options.inputs)) | set(dict(options.freeze))
    return replace(info, inputs=[i for i in info.inputs if i.name in seen or i.name in named])


def upstream_lines(options: ConversionOptions, info: ModelInfo) -> list[str]:
    """Each target's upstream command, or a shell comment saying why there is none (for --dryrun and the wizard)."""
    return [command or f"# {target}: no upstream command does this conversion directly (from a "
                       f"{info.format_title}, with these options); tfwizard goes through TensorFlow first"
            for target, command in upstream_commands(options, info).items()]


def check_output_dir(options: ConversionOptions, *, probe: bool = True) -> Path:
    """-o may be written by this run (see engine.output for what tfwizard may replace there)."""
    return output.check_output_dir(options, probe=probe)

