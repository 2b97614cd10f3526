"""What the converted model's interface will be: its inputs (overrides, --batch) and outputs, and
which inputs the preprocessing applies to. Plain Python, no TensorFlow: plan(), the backends'
check() and upstream_command() import this at the top. `options` is an engine.options.ConversionOptions
(not imported: ConversionOptions checks itself with the backends, which use this module)."""

from __future__ import annotations

from dataclasses import replace

from .errors import UserError
from .inspect import ModelInfo, TensorInfo


def final_inputs(info: ModelInfo, options) -> list[TensorInfo]:
    """The model's inputs with --input overrides and --batch applied; boolean switches dropped."""
    by_name = {i.name: i for i in info.inputs}
    for name, _ in options.inputs:
        if name not in by_name:
            raise UserError(f"--input {name!r}: no such input; the model's inputs are {', '.join(by_name) or 'none'}")
    for name, _ in options.freeze:
        if name not in by_name:
            raise UserError(f"--freeze {name}: no such input; the model's inputs are {', '.join(by_name) or 'none'}")
        if name in dict(options.inputs):
            raise UserError(f"--freeze {name} and --input {name} both given; an input is either fed or frozen, drop one")
    overrides, frozen = dict(options.inputs), dict(options.freeze)
    result = []
    for i in info.inputs:
        if i.name in frozen:
            continue  # baked in as a constant (prepare._rebuild)
        if i.note and i.name not in overrides and (i.dtype == "bool" or "default" in i.note):
            continue  # is_training-style switches and defaulted placeholders are frozen at their default
        shape = list(overrides[i.name]) if i.name in overrides else (None if i.shape is None else list(i.shape))
        if i.name in overrides and i.shape is not None and len(shape) != len(i.shape):
            raise UserError(f"--input {i.name!r}: rank {len(shape)} but the model's input has rank {len(i.shape)} "
                            f"({i.shape}); give {len(i.shape)} dimensions")
        if options.batch is not None and shape:
            shape[0] = options.batch
        result.append(replace(i, shape=shape))
    return result


def final_outputs(info: ModelInfo, options, graph=None) -> list[str]:
    """The outputs to convert. Graphs (pass the parsed GraphDef as `graph`) can be cut at any node."""
    if not options.outputs:
        if not info.outputs:  # upstream would be given --outputs '' and fail, or convert nothing
            fix = ("choose a signature that has outputs with --signature" if info.format == "saved_model"
                   else "name the node(s) to convert with --output NAME")
            raise UserError(f"{info.path}: the model has no outputs to convert; {fix}")
        return [o.name for o in info.outputs]
    if info.format in ("saved_model", "tf_hub", "keras_h5", "keras_v3", "tfjs_layers"):
        known = {o.name for o in info.outputs}
        unknown = [o for o in options.outputs if o not in known]
        if unknown:
            raise UserError(f"--output {unknown[0]!r}: no such output; the model's outputs are {', '.join(sorted(known))}")
    elif graph is not None:
        nodes = {n.name for n in graph.node}
        missing = [o for o in options.outputs if o.split(":")[0] not in nodes]
        if missing:
            raise UserError(f"--output {missing[0]!r}: no such node in the graph; the outputs found are "
                            f"{', '.join(o.name for o in info.outputs)}")
    return list(options.outputs)


def preprocessed_inputs(inputs, options) -> set[str]:
    """Names of the inputs the preprocessing applies to (empty without preprocessing); no TensorFlow."""
    if not options.has_preprocessing:
        return set()
    mean, scale = options.mean_scale
    return preprocessing_inputs(inputs, mean, scale, options.reverse_input_channels)


def preprocessed_name(input_name: str) -> str:
    """The node of a prepared graph that holds an input after the baked-in preprocessing (engine.prepare)."""
    return f"{input_name}/preprocessed"


def preprocessing_inputs(inputs, mean, scale, reverse) -> set[str]:
    """Float inputs whose channel count (last dim) matches the mean/scale vectors get the preprocessing."""
    widths = {len(v) for v in (mean, scale) if v and len(v) > 1}
    if len(widths) > 1:
        raise UserError("--mean-values and --scale-values have different lengths; give one value per channel for both")
    channels = widths.pop() if widths else (3 if reverse else None)
    chosen = {
        i.name for i in inputs
        if i.dtype and i.dtype.startswith("float") and i.shape
        and (channels is None or i.shape[-1] == channels)
    }
    if not chosen:
        what = f"{channels} channels (last dimension)" if channels else "a float input"
        raise UserError(f"preprocessing needs {what}, but the inputs are "
                        f"{', '.join(f'{i.name}{i.shape}' for i in inputs)}; check --mean-values/--scale-values")
    return chosen
