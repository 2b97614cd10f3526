"""What is inside a detected model: inputs, outputs, op inventory, tags and signatures.

Works on the parsed protobuf / Keras config alone (no TensorFlow import), so the
wizard and `tfwizard inspect` answer in a fraction of a second.

Outputs of a graph follow TF's summarize_graph rule: nodes no other node consumes (a
control edge is a consumer too: a v1 tf.cond's switch_t/switch_f feed its branches only
through control edges), excluding Const, Assign, NoOp, Assert and Placeholder. Graphs exported with their training left in (MetaGraphs,
Slim inference graphs from training code) would then list every optimizer update,
save op and initializer; we first mark that training machinery and everything that
only feeds it, and apply the rule to the rest.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field

from . import detections
from .detect import VARIABLE_OPS, Detection, Format
from .errors import UserError
from .keras_safety import code_risks, custom_classes
from .safety import custom_ops, function_calls, graph_risks, saved_model_risks
from .protos import dtype_name

SCHEMA = "tfwizard.inspect/1"
DT_BOOL = 10  # tensorflow DataType enum
INIT_OP_SIGNATURES = ("__saved_model_init_op", "__saved_model_train_op")
# summarize_graph's list, plus variables and shape queries: a model never outputs the shape of its
# input; a dangling Shape is a leftover of a shape check (sparse cross-entropy leaves one).
UNLIKELY_OUTPUT_OPS = {"Const", "Assign", "NoOp", "Assert", "Placeholder", "PlaceholderWithDefault",
                       "Shape", "ShapeN", "Size", "Rank"} | VARIABLE_OPS
# Ops that only make sense while training or checkpointing.
TRAINING_OPS = re.compile(
    r"^(Resource)?(Apply|SparseApply)\w+$|^Assign(Add|Sub)?(VariableOp)?$|^(Save|Restore)(V2|Slice|Slices)?$"
    r"|^MergeV2Checkpoints$|^ShardedFilename$|^(IsVariableInitialized|VarIsInitializedOp)$"
    r"|Summary(V2)?$|^Merge(All)?Summary$|^(Print|PrintV2)$"
)
TRAINER_OPS = re.compile(r"^(Resource)?(Apply|SparseApply)\w+$|^(Save|Restore)(V2|Slice|Slices)?$")
# At any scope level: training code often builds under a scope ("train/gradients/...", "model/Adam").
TRAINING_SCOPES = re.compile(
    r"(^|/)(save(_\d+)?|gradients(_\d+)?|report_uninitialized_variables(_\d+)?|\w*[Oo]ptimizer"
    r"|(GradientDescent|Momentum|Adam|AdamW|Adagrad|AdagradDA|Adadelta|RMSProp|Ftrl|ProximalAdagrad"
    r"|ProximalGradientDescent|Nadam|Adamax|SGD)(_\d+)?)(/|$)")
GRADIENT_OF = re.compile(r"(?:^|/)gradients(?:_\d+)?/(.+?)_grad/")


@dataclass(frozen=True)
class TensorInfo:
    name: str  # what users pass to --input/--output: node name, signature key or layer name
    dtype: str | None  # "float32"; None where the file does not say
    shape: list[int] | None  # -1 for unknown dims; None for unknown rank / not recorded
    tensor: str | None = None  # graph tensor ("input:0", "serving_default_x:0") where it differs from name
    note: str | None = None  # e.g. "boolean switch (is_training?): feed False for inference"


@dataclass
class ModelInfo:
    path: str
    format: str
    format_title: str
    reason: str
    producer: str | None  # "TensorFlow 2.19.0", "Keras 3.15.1"; None where the file does not record it
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    ops: dict[str, int]  # op type (or Keras layer class) → count, in the part that gets converted
    op_kind: str  # "tf_op" or "keras_layer"
    checkpoint: str | None = None
    tags: list[list[str]] = field(default_factory=list)  # SavedModel: every tag set
    tag: list[str] | None = None  # the chosen one
    signatures: list[str] = field(default_factory=list)  # for the chosen tag set
    signature: str | None = None
    warnings: list[str] = field(default_factory=list)
    # What runs code or touches files when the model loads or runs: Keras Lambda layers and custom
    # objects (see keras_safety), graph ops with side effects and custom ops (see safety).
    code_risks: list[str] = field(default_factory=list)
    # What the model needs from the user to load: Keras custom classes and functions (--custom-objects)
    # and op types TensorFlow does not have (custom ops: --load-op-library).
    custom_classes: list[str] = field(default_factory=list)
    custom_ops: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"schema": SCHEMA, **asdict(self)}


def inspect(detection: Detection, *, tag: str | None = None, signature: str | None = None) -> ModelInfo:
    """Describe `detection`. `tag` ("serve" or "serve,gpu") and `signature` choose within a SavedModel."""
    fmt = detection.format
    if fmt is Format.TFJS:
        raise UserError(f"{detection.path}: {detection.reason}; converting from a TF.js graph model is out of scope "
                        "(its ops are TF.js's, not TensorFlow's): give the model it was converted from (SavedModel, "
                        ".pb, Keras file); TF.js layers models are converted")
    if not fmt.convertible:
        raise UserError(
            f"{detection.path}: {detection.reason}; converting from a {fmt.title} is out of scope, "
            "give the original TensorFlow model (SavedModel, .pb, .meta, Keras file)"
        )
    if (tag is not None or signature) and fmt not in (Format.SAVED_MODEL, Format.TF_HUB):
        raise UserError(f"--tag/--signature apply to SavedModels only, and {detection.path} is a {fmt.title}; drop them")
    base = dict(path=str(detection.path), format=fmt.value, format_title=fmt.title, reason=detection.reason)
    if fmt in (Format.KERAS_H5, Format.KERAS_V3, Format.TFJS_LAYERS):
        return _inspect_keras(detection, base)
    if fmt in (Format.SAVED_MODEL, Format.TF_HUB):
        return _inspect_saved_model(detection, base, tag, signature)
    message = detection.parsed
    if fmt is Format.METAGRAPH:
        graph = message.graph_def
        version = message.meta_info_def.tensorflow_version
        producer = f"TensorFlow {version}" if version else None
        sig_outputs = _signature_tensors(message)
    else:
        graph = message
        producer = None  # a GraphDef records only its graph version (in the reason), not the release
        sig_outputs = None
    inputs, outputs, ops, warnings = summarize_graph(graph)
    from .graph_checks import malformed

    if why := malformed(graph):
        warnings.append(f"the model is malformed: {why}; convert refuses it")
    if not graph.HasField("versions") and fmt is not Format.METAGRAPH:
        # TensorFlow writes `versions` after the nodes. Cut between two nodes, a graph still parses,
        # and as nodes come in order it stays consistent: only this missing record hints at it.
        warnings.append("the graph has no versions record, which TensorFlow writes last: if the file was cut short, "
                        "these outputs are not the model's (graphs built by hand lack it too)")
    if sig_outputs:  # a MetaGraph exported with a serving signature says what its outputs are
        outputs = [o for o in outputs if o.name in sig_outputs] or outputs
    inputs = _detector_inputs(detection.path, inputs, outputs, ops, warnings)
    tensors = [o.tensor or o.name for o in outputs]
    risks = saved_model_risks(message, tensors) if fmt is Format.METAGRAPH else graph_risks(graph, outputs=tensors)
    return ModelInfo(**base, producer=producer, inputs=inputs, outputs=outputs, ops=ops, op_kind="tf_op",
                     checkpoint=detection.checkpoint, warnings=warnings, code_risks=risks, custom_ops=custom_ops(graph))


def _detector_inputs(path, inputs, outputs, ops, warnings) -> list[TensorInfo]:
    """For a TF Object Detection API model, the image input gets pipeline.config's size, if one lies beside it."""
    if not detections.looks_like_detector([o.name for o in outputs], ops):
        return inputs
    warnings.append("TF Object Detection API model (NMS inside while loops): outputs " + ", ".join(
        o.name for o in outputs) + "; verification compares matched detections")
    fixed = []
    for i in inputs:
        sized = detections.image_shape(path, i.shape) if i.dtype == "uint8" and i.name in detections.IMAGE_INPUTS else None
        fixed.append(TensorInfo(i.name, i.dtype, sized[0], i.tensor, note=sized[1]) if sized else i)
    return fixed


# --- graphs ------------------------------------------------------------------------------------


def summarize_graph(graph) -> tuple[list[TensorInfo], list[TensorInfo], dict[str, int], list[str]]:
    """Inputs, outputs, op inventory (of what feeds the outputs) and warnings for a GraphDef."""
    nodes = {n.name: n for n in graph.node}
    consumers: dict[str, list[str]] = {name: [] for name in nodes}
    for n in graph.node:
        for inp in n.input:
            source = inp.lstrip("^").split(":")[0]
            if source in consumers:
                consumers[source].append(n.name)

    noise = _training_noise(graph.node, nodes, consumers)
    live = [n for n in graph.node if n.name not in noise]
    candidates = [
        n.name for n in live
        if n.op not in UNLIKELY_OUTPUT_OPS and not any(c not in noise for c in consumers[n.name])
    ]
    placeholders = [n for n in live if n.op in ("Placeholder", "PlaceholderWithDefault")]
    # A dangling read of a variable (resource variables leave one per variable) computes nothing
    # from the inputs; prefer the candidates that do, unless none do (e.g. a graph fed by a queue).
    names = {p.name for p in placeholders}
    # Fed by real data, that is: a node that depends on nothing but is_training-style booleans is
    # control-flow plumbing (tf.cond's unused switch_t/switch_f, pred_id), not an output.
    data = {p.name for p in placeholders if p.attr["dtype"].type != DT_BOOL} or names
    fed = [c for c in candidates if ancestors([c], nodes, data_only=True) & data]
    # The loss dangles too. tf.gradients names its scopes gradients/<node>_grad/, so a dangling node
    # that was differentiated is a loss, not an inference output (unless nothing else is left).
    differentiated = {m.group(1) for n in noise if (m := GRADIENT_OF.search(n))}
    fed = [c for c in fed if c not in differentiated] or fed
    outputs = [_node_tensor(nodes[c]) for c in (fed or candidates)]
    # A TF Object Detection API export: its named outputs, not the rule's (its loops and asserts dangle).
    named = detections.detection_outputs([n.name for n in live if "/" not in n.name])
    if named:
        named_ops = Counter(nodes[a].op for a in ancestors(named, nodes))
        _count_function_ops(graph, named_ops)
        if detections.looks_like_detector(named, named_ops):
            outputs = [_node_tensor(nodes[n]) for n in named]
            fed = fed or [o.name for o in outputs]
    # Inputs are the placeholders the outputs need (a labels placeholder feeds only the loss).
    needed = ancestors([o.name for o in outputs], nodes, data_only=True)
    inputs = [_placeholder(n) for n in placeholders if n.name in needed or not fed]
    warnings = []
    trainers = [n for n in graph.node if TRAINING_SCOPES.search(n.name) or TRAINER_OPS.match(n.op)]
    if trainers:
        warnings.append(f"training left in the graph: {len(noise)} nodes (optimizer, gradients, save/restore, "
                        "initializers) set aside; they are not converted")
    ops = Counter(nodes[name].op for name in ancestors([o.name for o in outputs], nodes))
    _count_function_ops(graph, ops)
    return inputs, outputs, dict(ops.most_common()), warnings


def graph_op_inventory(graph) -> dict[str, int]:
    """Op type → count over every node of a GraphDef and the functions it calls."""
    ops = Counter(n.op for n in graph.node)
    _count_function_ops(graph, ops)
    return dict(ops.most_common())


def _training_noise(order, nodes, consumers) -> set[str]:
    """Training/checkpoint ops, plus every node whose consumers are all such ops (fixpoint)."""
    noise = {n.name for n in order if TRAINING_OPS.search(n.op) or TRAINING_SCOPES.search(n.name)}
    if not noise:
        return noise
    changed = True
    while changed:  # graphs are mostly topologically ordered, so walking backwards converges fast
        changed = False
        for n in reversed(order):
            if n.name not in noise and consumers[n.name] and all(c in noise for c in consumers[n.name]):
                noise.add(n.name)
                changed = True
    return noise


def ancestors(roots: list[str], nodes, *, data_only: bool = False) -> set[str]:
    """Names of `roots` and every node they depend on (through control edges too, unless data_only)."""
    seen, stack = set(), list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        stack.extend(i.lstrip("^").split(":")[0] for i in nodes[name].input if not (data_only and i.startswith("^")))
    return seen


def source(nodes, ref: str) -> str:
    """The name of the node a tensor reference reads, through any Identity nodes (it may not be in `nodes`)."""
    name = ref.lstrip("^").split(":")[0]
    while name in nodes and nodes[name].op == "Identity" and nodes[name].input:
        name = nodes[name].input[0].lstrip("^").split(":")[0]
    return name


def _count_function_ops(graph, ops: Counter) -> None:
    """Add the ops inside functions called from the counted nodes (TF2 graphs keep everything there)."""
    functions = {f.signature.name: f for f in graph.library.function}
    if not functions:
        return
    pending = [name for op in list(ops) for name in ([op] if op in functions else [])]
    pending += function_calls(graph.node)
    seen = set()
    while pending:
        name = pending.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        body = functions[name].node_def
        ops.update(n.op for n in body)
        pending += function_calls(body)


def _placeholder(node) -> TensorInfo:
    dtype = dtype_name(node.attr["dtype"].type) if "dtype" in node.attr else None
    shape = _shape(node.attr["shape"].shape) if "shape" in node.attr else None
    note = None
    if dtype == "bool":
        note = "boolean switch (like is_training): feed False for inference"
    elif node.op == "PlaceholderWithDefault":
        note = "optional: has a default value"
    return TensorInfo(node.name, dtype, shape, tensor=f"{node.name}:0", note=note)


def _node_tensor(node) -> TensorInfo:
    dtype = None
    for key in ("T", "dtype", "out_type", "output_type", "DstT"):
        if key in node.attr and node.attr[key].type:
            dtype = dtype_name(node.attr[key].type)
            break
    shapes = node.attr["_output_shapes"].list.shape if "_output_shapes" in node.attr else []
    return TensorInfo(node.name, dtype, _shape(shapes[0]) if shapes else None, tensor=f"{node.name}:0")


def _shape(proto) -> list[int] | None:
    if proto.unknown_rank:
        return None
    return [d.size if d.size >= 0 else -1 for d in proto.dim]


def _signature_tensors(meta) -> set[str]:
    names = set()
    for key, sig in meta.signature_def.items():
        if not key.startswith("__"):
            names |= {t.name.split(":")[0] for t in sig.outputs.values()}
    return names


# --- SavedModel --------------------------------------------------------------------------------


def _inspect_saved_model(detection: Detection, base: dict, tag: str | None, signature: str | None) -> ModelInfo:
    graphs = list(detection.parsed.meta_graphs)
    tag_sets = [list(g.meta_info_def.tags) for g in graphs]
    hub = detection.format is Format.TF_HUB  # Hub's defaults: the empty tag set, the `default` signature
    meta = _choose_meta_graph(detection, graphs, tag, default=set() if hub else {"serve"})
    signatures = [k for k in meta.signature_def if k not in INIT_OP_SIGNATURES]
    chosen = _choose_signature(detection, signatures, signature, default="default" if hub else "serving_default")
    sig = meta.signature_def[chosen]
    inputs = [_tensor_info(key, t) for key, t in sorted(sig.inputs.items())]
    outputs = [_tensor_info(key, t) for key, t in sorted(sig.outputs.items())]
    graph = meta.graph_def
    nodes = {n.name: n for n in graph.node}
    reachable = ancestors([t.tensor.split(":")[0] for t in outputs], nodes)
    ops = Counter(nodes[name].op for name in reachable)
    _count_function_ops(_SubGraph(graph, [nodes[n] for n in reachable]), ops)
    version = meta.meta_info_def.tensorflow_version
    warnings = []
    inputs = _detector_inputs(detection.path, inputs, outputs, ops, warnings)
    return ModelInfo(
        **base, producer=f"TensorFlow {version}" if version else None, inputs=inputs, outputs=outputs,
        ops=dict(ops.most_common()), op_kind="tf_op", tags=tag_sets, warnings=warnings, tag=list(meta.meta_info_def.tags),
        signatures=sorted(signatures), signature=chosen,
        code_risks=saved_model_risks(meta, [t.tensor for t in outputs if t.tensor]), custom_ops=custom_ops(graph),
    )


class _SubGraph:
    """A GraphDef-like view: the reachable nodes with the graph's function library."""

    def __init__(self, graph, nodes):
        self.node, self.library = nodes, graph.library


def _choose_meta_graph(detection, graphs, tag: str | None, default: set[str]):
    available = " | ".join(",".join(g.meta_info_def.tags) or "(none)" for g in graphs)
    if tag is not None:
        wanted = {t.strip() for t in tag.split(",") if t.strip()}
        for g in graphs:
            if set(g.meta_info_def.tags) == wanted:
                return g
        raise UserError(f"{detection.path}: no meta graph with tags '{tag}'; available: {available}; pass one with --tag")
    if len(graphs) == 1:
        return graphs[0]
    for g in graphs:
        if set(g.meta_info_def.tags) == default:
            return g
    raise UserError(f"{detection.path}: several meta graphs ({available}); choose one with --tag")


def _choose_signature(detection, signatures: list[str], signature: str | None, default: str) -> str:
    if signature is not None:
        if signature in signatures:
            return signature
        raise UserError(
            f"{detection.path}: no signature '{signature}'; available: {', '.join(sorted(signatures)) or 'none'}; "
            "pass one with --signature"
        )
    if not signatures:
        raise UserError(f"{detection.path}: the SavedModel has no serving signature; re-export it with signatures=...")
    if default in signatures or len(signatures) == 1:
        return default if default in signatures else signatures[0]
    raise UserError(f"{detection.path}: several signatures ({', '.join(sorted(signatures))}); choose one with --signature")


def _tensor_info(key: str, t) -> TensorInfo:
    shape = None if t.tensor_shape.unknown_rank else _shape(t.tensor_shape)
    return TensorInfo(key, dtype_name(t.dtype), shape, tensor=t.name or None)


# --- Keras -------------------------------------------------------------------------------------


# detect() has checked the shape of the config (model class, layers as objects with a class and a
# config object); values inside (names, shapes, dtypes) are still whatever the file says.


def _inspect_keras(detection: Detection, base: dict) -> ModelInfo:
    config = detection.parsed["config"]
    version = detection.parsed["keras_version"]
    body = config.get("config", {})
    layers = body.get("layers", [])
    if config.get("class_name") == "Sequential":
        inputs, outputs = _sequential_io(body, layers)
    else:
        by_name = {_layer_name(layer): layer for layer in layers}
        inputs = [_keras_input(by_name.get(n), n) for n in _layer_refs(body.get("input_layers"))]
        outputs = [TensorInfo(n, _keras_dtype(by_name.get(n)), None) for n in _layer_refs(body.get("output_layers"))]
    counts = Counter()
    _count_layers(layers, counts)
    return ModelInfo(
        **base, producer=detection.parsed.get("producer") or (f"Keras {version}" if version else None),
        inputs=inputs, outputs=outputs, ops=dict(counts.most_common()), op_kind="keras_layer", code_risks=code_risks(config),
        custom_classes=custom_classes(config),
    )


def _sequential_io(body: dict, layers: list) -> tuple[list[TensorInfo], list[TensorInfo]]:
    first = layers[0] if layers else {}
    cfg = first.get("config", {})
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
    if shape is None and body.get("build_input_shape") is not None:
        shape = body["build_input_shape"]
    default = f"{_text(body.get('name')) or 'sequential'}_input"
    name = (_layer_name(first) or "input") if first.get("class_name") == "InputLayer" else default
    inputs = [TensorInfo(name, _keras_dtype(first) or "float32", _dims(shape))]
    last = layers[-1] if layers else {}
    outputs = [TensorInfo(_layer_name(last) or "output", _keras_dtype(last), None)]
    return inputs, outputs


def _layer_name(layer: dict) -> str | None:
    return _text(layer.get("config", {}).get("name")) or _text(layer.get("name"))


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _layer_refs(refs) -> list[str]:
    """input_layers/output_layers: [[name, node, tensor], ...] or, in Keras 3 for one tensor, [name, node, tensor]."""
    if not isinstance(refs, list) or not refs:
        return []
    if isinstance(refs[0], str):
        return [refs[0]]
    return [r[0] for r in refs if isinstance(r, list) and r and isinstance(r[0], str)]


def _keras_input(layer: dict | None, name: str) -> TensorInfo:
    cfg = (layer or {}).get("config", {})
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
    return TensorInfo(name, _keras_dtype(layer) or "float32", _dims(shape))


def _keras_dtype(layer: dict | None) -> str | None:
    dtype = (layer or {}).get("config", {}).get("dtype")
    if isinstance(dtype, dict):  # Keras 3 DTypePolicy
        inner = dtype.get("config")
        dtype = inner.get("name") if isinstance(inner, dict) else None
    if dtype in ("mixed_float16", "mixed_bfloat16"):
        return "float32"
    return dtype if isinstance(dtype, str) else None


def _dims(shape) -> list[int] | None:
    """A stored shape as ints (-1 for None); None when absent or not a list of dims."""
    if not isinstance(shape, list) or not all(d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in shape):
        return None
    return [-1 if d is None or d < 0 else d for d in shape]


def _count_layers(layers: list, counts: Counter) -> None:
    for layer in layers:
        counts[layer["class_name"]] += 1
        inner = layer.get("config", {})
        if isinstance(inner.get("layers"), list):  # nested models
            _count_layers(inner["layers"], counts)
