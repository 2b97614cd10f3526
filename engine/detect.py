"""Which kind of TensorFlow model is this path? Decided by content, never by suffix alone.

`detect(path)` returns a Detection: the format, the files that make up the model
(graph, checkpoint, ...) and a one-line reason a person can read. It parses what
it must to be sure (protobuf, HDF5 attributes, zip directory, JSON) and keeps the
parsed message so inspect does not read a 100 MB graph twice. No TensorFlow here.
"""

from __future__ import annotations

import enum
import errno
import json
import os
import re
import zipfile
import zlib
from itertools import islice
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .skim import Truncated, _read_varint, skim_graphdef, wire_fields


class Format(str, enum.Enum):
    GRAPHDEF = "graphdef"  # frozen GraphDef, binary .pb
    GRAPHDEF_TEXT = "graphdef_text"  # GraphDef in protobuf text format (.pbtxt)
    CHECKPOINT = "checkpoint"  # inference GraphDef with variables + a checkpoint
    METAGRAPH = "metagraph"  # .meta + .index/.data checkpoint
    SAVED_MODEL = "saved_model"
    KERAS_H5 = "keras_h5"
    KERAS_V3 = "keras_v3"
    TF_HUB = "tf_hub"  # a TF1 Hub module: tfhub_module.pb beside a SavedModel with Hub tag sets
    TFJS_LAYERS = "tfjs_layers"  # TF.js layers model: model.json (a Keras config) + weight shards
    # Recognised so we can say so, but not inputs we convert from.
    TFJS = "tfjs"
    TFLITE = "tflite"
    ONNX = "onnx"

    @property
    def title(self) -> str:
        return _TITLES[self]

    @property
    def convertible(self) -> bool:
        return self not in (Format.TFJS, Format.TFLITE, Format.ONNX)


_TITLES = {
    Format.GRAPHDEF: "frozen GraphDef (binary)",
    Format.GRAPHDEF_TEXT: "GraphDef (text)",
    Format.CHECKPOINT: "inference graph + checkpoint",
    Format.METAGRAPH: "MetaGraph + checkpoint",
    Format.SAVED_MODEL: "SavedModel",
    Format.KERAS_H5: "Keras HDF5",
    Format.KERAS_V3: "Keras v3 (.keras)",
    Format.TF_HUB: "TF1 Hub module",
    Format.TFJS_LAYERS: "TensorFlow.js layers model",
    Format.TFJS: "TensorFlow.js graph model",
    Format.TFLITE: "TFLite flatbuffer",
    Format.ONNX: "ONNX model",
}


@dataclass(frozen=True)
class Detection:
    format: Format
    path: Path  # what the user named: a file or a SavedModel directory
    reason: str  # one line, for people
    graph: Path | None = None  # GraphDef / MetaGraph / saved_model.pb file
    checkpoint: str | None = None  # checkpoint prefix (V2) or file (V1)
    parsed: object = field(default=None, compare=False, repr=False)  # message or config kept for inspect


HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
# LevelDB-style table footer that TensorFlow's checkpoint files (V1 and V2 .index) end with.
TABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")
VARIABLE_OPS = {"VariableV2", "Variable", "VarHandleOp", "AutoReloadVariable"}
MODEL_SUFFIXES = {".pb", ".pbtxt", ".meta", ".h5", ".hdf5", ".keras", ".tflite", ".onnx", ".json"}
MAX_CONFIG_BYTES = 64 << 20  # a .keras config.json/metadata.json beyond this is refused, not inflated
_OP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_>]*$")
# A URL (pathlib folds "https://" to "https:/") or a tfhub.dev / Kaggle address without a scheme.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/|^(www\.)?(tfhub\.dev|kaggle\.com)/")


def detect(path: str | Path, *, checkpoint: str | Path | None = None) -> Detection:
    """Detect the model at `path`. `checkpoint` overrides the checkpoint found beside a graph."""
    if _URL.match(str(path)) and not Path(path).exists():
        raise UserError(_download_first(str(path)))
    path = Path(path)
    try:
        is_dir = path.is_dir()
        exists = is_dir or path.is_file()
    except OSError as e:  # symlink loops, permission problems
        raise UserError(f"{path}: cannot be read ({e.strerror or e}); check the path and its permissions") from None
    if not exists:
        if path.exists():
            raise UserError(f"{path}: not a regular file or directory; pass a model file or SavedModel directory")
        if _is_symlink_loop(path):
            raise UserError(f"{path}: a symlink loop (too many levels of symbolic links); point it at the model instead")
        hint = " (a broken symlink)" if path.is_symlink() else ""
        raise UserError(f"{path}: no such file or directory{hint}; check the path")
    if is_dir:
        return _detect_dir(path, checkpoint)
    return _detect_file(path, checkpoint)


def _download_first(url: str) -> str:
    url = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*):/(?!/)", r"\1://", url)  # what pathlib folded
    if "://" not in url:
        url = "https://" + url
    return (f"{url}: a URL or TF Hub handle; tfwizard converts local models only: download it first, e.g. "
            f"mkdir model && curl -L '{url}?tf-hub-format=compressed' | tar -xz -C model "
            "(tfhub.dev and Kaggle model pages serve the model as a .tar.gz that way), then convert model/")


def _is_symlink_loop(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as e:
        return e.errno == errno.ELOOP
    return False


# --- directories -------------------------------------------------------------------------------


def _detect_dir(path: Path, checkpoint) -> Detection:
    if (path / "tfhub_module.pb").is_file():
        return _hub_module(path)
    for name in ("saved_model.pb", "saved_model.pbtxt"):
        if (path / name).is_file():
            return _saved_model(path, path / name)
    if (path / "model.json").is_file():
        return _detect_file(path / "model.json", checkpoint)
    try:
        candidates = sorted(p for p in path.iterdir() if p.suffix.lower() in MODEL_SUFFIXES and p.is_file())
    except OSError as e:
        raise UserError(f"{path}: cannot list the directory ({e.strerror}); check its permissions") from None
    if len(candidates) == 1:
        return _detect_file(candidates[0], checkpoint)
    if not candidates:
        raise UserError(
            f"{path}: nothing recognisable in this directory; expected a SavedModel (saved_model.pb), "
            "a .pb/.pbtxt graph, a .meta file or a Keras .h5/.keras file"
        )
    names = ", ".join(p.name for p in candidates[:6])
    raise UserError(f"{path}: this directory holds several model files ({names}); pass the one to use")


def _saved_model(directory: Path, pb: Path) -> Detection:
    from . import protos

    message = protos.saved_model_class()()
    _parse(message, pb, text=pb.suffix == ".pbtxt", what="SavedModel")
    graphs = list(message.meta_graphs)
    if not graphs:
        raise UserError(f"{pb}: the SavedModel holds no meta graph; re-export it with tf.saved_model.save")
    if not (directory / "variables" / "variables.index").is_file() and _has_variables(graphs):
        raise UserError(
            f"{directory}: SavedModel without variables/ (variables/variables.index is missing); "
            "copy the whole SavedModel directory, including variables/"
        )
    _check_assets(directory)
    tags = " | ".join(",".join(g.meta_info_def.tags) or "(none)" for g in graphs)
    signatures = sorted({k for g in graphs for k in g.signature_def if not k.startswith("__")})
    version = graphs[0].meta_info_def.tensorflow_version
    kind = "TF2" if any(g.object_graph_def.nodes for g in graphs) else "TF1"
    reason = (
        f"directory with {pb.name}: {len(graphs)} meta graph{'s' * (len(graphs) > 1)}, tags [{tags}], "
        f"signatures [{', '.join(signatures) or 'none'}] ({kind}"
        + (f", TensorFlow {version})" if version else ")")
    )
    return Detection(Format.SAVED_MODEL, directory, reason, graph=pb, parsed=message)


MAX_MODULE_DEF_BYTES = 4096  # a ModuleDef is a format number and a few feature names


def _hub_module(directory: Path) -> Detection:
    """A TF1 Hub module: tfhub_module.pb (ModuleDef: format FORMAT_V3 = 1) beside a SavedModel whose
    meta graphs carry the Hub tag sets (the default is the empty set)."""
    marker = directory / "tfhub_module.pb"
    bad = UserError(f"{marker}: not a TF Hub ModuleDef (expected format FORMAT_V3); the module is damaged or "
                    "not a TF1 Hub module, download it again")
    try:
        data = marker.read_bytes()[:MAX_MODULE_DEF_BYTES + 1]
    except OSError as e:
        raise UserError(f"{marker}: cannot be read ({e.strerror}); check its permissions") from None
    if len(data) > MAX_MODULE_DEF_BYTES:
        raise bad
    try:
        fields = list(wire_fields(data, 0, len(data)))
    except Truncated:
        raise bad from None
    formats = [_read_varint(data, start, stop)[0] for number, wire, start, stop, _ in fields if number == 1 and wire == 0]
    if formats != [1] or any(number not in (1, 2) for number, *_ in fields):
        raise bad
    if not (directory / "saved_model.pb").is_file():
        raise UserError(f"{directory}: TF Hub module without saved_model.pb; download the whole module again")
    saved = _saved_model(directory, directory / "saved_model.pb")
    reason = "tfhub_module.pb (ModuleDef FORMAT_V3) + " + saved.reason
    return Detection(Format.TF_HUB, directory, reason, graph=saved.graph, parsed=saved.parsed)


def _check_assets(directory: Path) -> None:
    """Assets are read whole on load: a FIFO would hang it, /dev/zero fill the memory. Only regular files
    inside the SavedModel (directly or by a symlink that stays inside) are accepted."""
    assets, root = directory / "assets", directory.resolve()
    if not assets.is_dir():
        return
    for entry in assets.rglob("*"):
        try:
            target = entry.resolve(strict=True)
            fine = target.is_relative_to(root) and (target.is_dir() or target.is_file())
        except (OSError, RuntimeError):
            fine = False
        if not fine:
            kind = "a symlink out of the model" if entry.is_symlink() else "not a regular file"
            raise UserError(f"{entry}: a SavedModel asset that is {kind} (a FIFO or device would hang or exhaust "
                            "the conversion); replace it with the real file")


def _has_variables(meta_graphs) -> bool:
    for g in meta_graphs:
        if any(n.op in VARIABLE_OPS for n in g.graph_def.node):
            return True
        if any(n.WhichOneof("kind") == "variable" for n in g.object_graph_def.nodes):
            return True
    return False


# --- files -------------------------------------------------------------------------------------


def _detect_file(path: Path, checkpoint) -> Detection:
    if path.name == "tfhub_module.pb" or (path.name == "saved_model.pb" and (path.parent / "tfhub_module.pb").is_file()):
        return _hub_module(path.parent)
    if path.name in ("saved_model.pb", "saved_model.pbtxt"):
        return _saved_model(path.parent, path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(16)
            f.seek(max(size - 8, 0))
            tail = f.read(8)
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror}); check its permissions") from None
    if size == 0:
        raise UserError(f"{path}: the file is empty (0 bytes), probably not fully written or downloaded; copy or export it again")

    if head.startswith(HDF5_MAGIC):
        return _keras_h5(path)
    if head.startswith(ZIP_MAGIC):
        return _keras_v3(path)
    if head[4:8] == b"TFL3":
        return Detection(Format.TFLITE, path, "TFLite flatbuffer (file identifier TFL3)")
    if head.lstrip()[:1] == b"{":
        return _json_model(path)
    if tail == TABLE_MAGIC:
        raise UserError(
            f"{path}: this is a TensorFlow checkpoint (weights only, no graph); "
            "pass the graph that goes with it (.pb or .meta) instead"
        )
    return _protobuf(path, checkpoint)


def _keras_h5(path: Path) -> Detection:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            keys = set(f.keys())
            names = set(f.attrs.keys())
            config = f.attrs["model_config"] if "model_config" in names else None
            version = f.attrs["keras_version"] if "keras_version" in names else ""
    # h5py turns a damaged file into OSError mostly, but KeyError/ValueError/RuntimeError/TypeError
    # where the damage is in an attribute or link table; all mean the same to the user.
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as e:
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: HDF5 signature but unreadable ({msg}); the file may be truncated or corrupt, "
                        "re-download or re-save it") from None
    if config is None:
        if "layer_names" in names or {"layers", "vars"} & keys or "model_weights" in keys:
            raise UserError(
                f"{path}: Keras weights-only HDF5: it holds the weights but not the architecture "
                "(no model_config); save the full model with model.save('model.keras') and convert that"
            )
        raise UserError(f"{path}: HDF5 file without a Keras model_config, so not a Keras model; "
                        "pass a model saved with model.save()")
    config = _keras_config(_json_loads(config, path, "model_config"), path, "model_config")
    version = _text(version)
    major = version.split(".")[0] if version else "?"
    cls = config.get("class_name", "?")
    reason = f"HDF5 with model_config: Keras {cls} model, written by Keras {version or 'unknown'}"
    return Detection(Format.KERAS_H5, path, reason, parsed={"config": config, "keras_version": version, "keras_major": major})


def _keras_v3(path: Path) -> Detection:
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "config.json" not in names:
                raise UserError(f"{path}: a zip archive without config.json, so not a Keras v3 .keras file; pass a model saved with model.save()")
            config = _keras_config(_json_loads(_bounded_read(z, "config.json", path), path, "config.json"), path, "config.json")
            meta = _json_loads(_bounded_read(z, "metadata.json", path), path, "metadata.json") if "metadata.json" in names else {}
    # zlib.error: a deflated member that does not inflate; ValueError/NotImplementedError: bad header fields.
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError, NotImplementedError) as e:
        raise UserError(f"{path}: zip signature but unreadable ({e}); the file may be truncated or corrupt, "
                        "re-download or re-save it") from None
    if "model.weights.h5" not in names:
        raise UserError(f"{path}: .keras archive without model.weights.h5; re-save the model with model.save()")
    version = meta.get("keras_version", "")
    version = version if isinstance(version, str) else ""
    reason = (
        f"zip with config.json + model.weights.h5: Keras {config.get('class_name', '?')} model, "
        f"written by Keras {version or 'unknown'}"
    )
    return Detection(Format.KERAS_V3, path, reason, parsed={"config": config, "keras_version": version, "keras_major": "3"})


def _bounded_read(z: zipfile.ZipFile, name: str, path: Path) -> bytes:
    """A member of at most MAX_CONFIG_BYTES, by its declared size and by what it really inflates to."""
    too_big = UserError(f"{path}: {name} is over {MAX_CONFIG_BYTES >> 20} MiB inflated, far beyond any real model's "
                        "config (a zip bomb or a damaged file); re-save the model with model.save()")
    if z.getinfo(name).file_size > MAX_CONFIG_BYTES:
        raise too_big
    with z.open(name) as member:
        data = member.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise too_big
    return data


def _json_model(path: Path) -> Detection:
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"{path}: a JSON file over {MAX_CONFIG_BYTES >> 20} MiB, far beyond any model.json; "
                        "pass a TensorFlow model")
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise UserError(f"{path}: starts like JSON but does not parse, so it is not a model file; pass a TensorFlow model") from None
    if isinstance(doc, dict) and ("modelTopology" in doc or "weightsManifest" in doc):
        topology = doc.get("modelTopology")
        if doc.get("format") == "layers-model" or (isinstance(topology, dict) and (
                "model_config" in topology or "class_name" in topology)):
            return _tfjs_layers(path, doc)
        kind = doc.get("format", "graph-model")
        return Detection(Format.TFJS, path, f"JSON with modelTopology/weightsManifest: TensorFlow.js {_text(kind)[:40]}")
    raise UserError(f"{path}: a JSON file that is not a TensorFlow.js model.json; pass a TensorFlow model")


# Bytes per element of each dtype a weights manifest may store (a quantized weight: its quantization dtype).
TFJS_DTYPE_BYTES = {"float32": 4, "int32": 4, "bool": 1, "complex64": 8, "uint8": 1, "uint16": 2, "float16": 2}


def _tfjs_layers(path: Path, doc: dict) -> Detection:
    """A TF.js layers model: modelTopology is a Keras config (maybe under model_config), and the
    weights manifest names shard files that must lie in model.json's directory and hold exactly
    the bytes its weights need (checked here: the file is hostile input like any other)."""
    def bad(why: str):
        return UserError(f"{path}: a TF.js layers model.json whose {why}; convert the model again or "
                         "copy the whole model directory")

    topology = doc.get("modelTopology")
    if not isinstance(topology, dict):
        raise bad("modelTopology is not an object")
    config = topology.get("model_config", topology)
    if not isinstance(config, dict):
        raise bad("model_config is not an object")
    config = _keras_config(config, path, "modelTopology")
    manifest = doc.get("weightsManifest", [])
    if not isinstance(manifest, list):
        raise bad("weightsManifest is not a list")
    root, needed, stored = path.parent.resolve(), 0, 0
    for group in manifest:
        if not isinstance(group, dict) or not isinstance(group.get("paths"), list) or not isinstance(group.get("weights"), list):
            raise bad("weightsManifest holds a group without paths and weights lists")
        for name in group["paths"]:
            if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
                raise bad(f"weight file {name!r} is not a plain file name inside the model's directory")
            shard = path.parent / name
            try:
                target = shard.resolve(strict=True)
                regular = target.is_relative_to(root) and target.is_file()
            except (OSError, RuntimeError, ValueError):  # ValueError: a NUL in the name
                raise bad(f"weight file {name!r} is missing") from None
            if not regular:
                raise bad(f"weight file {name!r} is not a regular file inside the model's directory")
            stored += target.stat().st_size
        for weight in group["weights"]:
            needed += _weight_bytes(weight, bad)
    if needed != stored:
        raise bad(f"weights need {needed:,} bytes but the shards hold {stored:,} (truncated or not this model's)")
    keras_version = _text(topology.get("keras_version") or "")
    producer = _text(doc.get("generatedBy") or "") or (f"Keras {keras_version}" if keras_version else "")
    reason = (f"model.json with format layers-model and a Keras config: {config.get('class_name', '?')} model, "
              f"{sum(len(g['paths']) for g in manifest)} weight shard(s), {stored:,} bytes"
              + (f", generated by {producer[:60]}" if producer else ""))
    return Detection(Format.TFJS_LAYERS, path, reason, parsed={
        "config": config, "keras_version": keras_version, "keras_major": "2", "producer": producer[:80] or None})


def _weight_bytes(weight, bad) -> int:
    if not isinstance(weight, dict) or not isinstance(weight.get("name"), str):
        raise bad("weightsManifest holds a weight without a name")
    shape = weight.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise bad(f"weight {weight['name']!r} has no shape of non-negative integers")
    quantization = weight.get("quantization")
    dtype = quantization.get("dtype") if isinstance(quantization, dict) else weight.get("dtype")
    if dtype not in TFJS_DTYPE_BYTES:
        raise bad(f"weight {weight['name']!r} has dtype {dtype!r}, which a layers model does not store")
    count = 1
    for d in shape:
        count *= d
        if count > MAX_WEIGHT_ELEMENTS:
            raise bad(f"weight {weight['name']!r} has an impossible shape {shape[:8]}")
    return count * TFJS_DTYPE_BYTES[dtype]


MAX_WEIGHT_ELEMENTS = 1 << 40


def _protobuf(path: Path, checkpoint) -> Detection:
    from . import protos

    kind, message = "graph", None
    if not path.name.endswith(".meta"):  # the common case, a frozen graph: read its structure, not its weights
        try:
            message = _try_binary("graph", skim_graphdef(path))
        except Truncated:
            pass
        except OSError as e:
            raise UserError(f"{path}: cannot be read ({e.strerror}); check its permissions") from None
    if message is None:
        data = path.read_bytes()
        for kind in ("meta", "graph", "saved_model"):
            message = _try_binary(kind, data)
            if message is not None:
                break
    if message is None:
        if _looks_like_onnx(data):
            return Detection(Format.ONNX, path, "protobuf ModelProto with ir_version and graph: ONNX")
        message = _try_text(data)
        if message is None:
            what = {".pb": "a binary GraphDef", ".meta": "a MetaGraph", ".pbtxt": "a text GraphDef"}.get(path.suffix)
            raise UserError(
                f"{path}: not a readable TensorFlow model"
                + (f" (does not parse as {what}; it may be truncated or corrupt)" if what else
                   " (not a GraphDef, MetaGraph, SavedModel, Keras, TF.js, TFLite or ONNX file)")
                + "; re-export or re-download it"
            )
        kind = "graph_text" if isinstance(message, protos.GraphDef) else "meta_text"

    if kind == "saved_model":
        return _saved_model(path.parent, path)
    _check_inputs_exist(message.graph_def if kind.startswith("meta") else message, path)
    if kind.startswith("meta"):
        return _metagraph(path, message, checkpoint)
    nodes = message.node
    variables = sum(n.op in VARIABLE_OPS for n in nodes)
    fmt = "text" if kind == "graph_text" else "binary"
    if variables:
        ckpt = _find_checkpoint(path, checkpoint, graph_kind=f"{fmt} GraphDef with {variables} variables")
        reason = (
            f"{fmt} GraphDef with {len(nodes)} nodes and {variables} variables (not frozen); "
            f"checkpoint {_describe_checkpoint(ckpt)}"
        )
        return Detection(Format.CHECKPOINT, path, reason, graph=path, checkpoint=ckpt, parsed=message)
    producer = message.versions.producer
    reason = f"parses as a {fmt} GraphDef: {len(nodes)} nodes, no variables (frozen)" + (
        f", graph producer version {producer}" if producer else "")
    return Detection(Format.GRAPHDEF if fmt == "binary" else Format.GRAPHDEF_TEXT, path, reason, graph=path, parsed=message)


def _metagraph(path: Path, message, checkpoint) -> Detection:
    nodes = message.graph_def.node
    variables = sum(n.op in VARIABLE_OPS for n in nodes)
    ckpt = None
    if variables:
        ckpt = _find_checkpoint(path, checkpoint, graph_kind=f"MetaGraph with {variables} variables")
    version = message.meta_info_def.tensorflow_version
    reason = (
        f"MetaGraphDef: {len(nodes)} nodes, {variables} variables"
        + (f", checkpoint {_describe_checkpoint(ckpt)}" if ckpt else "")
        + (f", written by TensorFlow {version}" if version else "")
    )
    return Detection(Format.METAGRAPH, path, reason, graph=path, checkpoint=ckpt, parsed=message)


def _check_inputs_exist(graph, path: Path) -> None:
    """A graph cut short at a node boundary still parses; its nodes then name inputs that are gone."""
    names = {n.name for n in graph.node}
    for n in graph.node:
        for inp in n.input:
            source = inp.lstrip("^").split(":")[0]
            if source not in names:
                raise UserError(f"{path}: node {n.name!r} takes input {source!r}, which is not in the graph; "
                                "the file is truncated or corrupt, re-export or re-download it")


def _try_binary(kind: str, data: bytes):
    from . import protos

    cls = {"graph": protos.GraphDef, "meta": protos.MetaGraphDef, "saved_model": protos.saved_model_class()}[kind]
    message = cls()
    try:
        message.ParseFromString(data)
    except (protos.DecodeError, RuntimeError, ValueError):
        return None
    graphs = {"graph": lambda m: [m], "meta": lambda m: [m.graph_def], "saved_model": lambda m: [g.graph_def for g in m.meta_graphs]}[kind](message)
    if not graphs or not all(_plausible_graph(g) for g in graphs):
        return None
    if kind == "meta" and not message.HasField("meta_info_def") and not message.signature_def and not message.collection_def:
        return None  # a GraphDef also parses as a MetaGraph with a graph_def; call it what it is
    return message


def _plausible_graph(graph) -> bool:
    """Every node has a name and an op that looks like an op name; random bytes rarely manage that."""
    if not graph.node and not graph.library.function:
        return False
    return all(n.name and _OP_NAME.match(n.op) for n in graph.node)


def _try_text(data: bytes):
    from . import protos

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    for cls in (protos.GraphDef, protos.MetaGraphDef):
        message = cls()
        try:
            protos.text_format.Parse(text, message, allow_unknown_field=False)
        except (protos.text_format.ParseError, ValueError, RuntimeError):
            continue
        graph = message if cls is protos.GraphDef else message.graph_def
        if _plausible_graph(graph):
            return message
    return None


def _looks_like_onnx(data: bytes) -> bool:
    """ONNX ModelProto: ir_version (field 1, varint) first, a graph (field 7) and only ModelProto fields."""
    try:
        fields = [(number, wire) for number, wire, *_ in islice(wire_fields(data, 0, len(data)), 1000)]
    except Truncated:
        return False
    return bool(fields) and fields[0] == (1, 0) and (7, 2) in fields and {f for f, _ in fields} <= _ONNX_FIELDS


_ONNX_FIELDS = {1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25}


# --- checkpoints -------------------------------------------------------------------------------


def _find_checkpoint(graph: Path, explicit, *, graph_kind: str) -> str:
    """The checkpoint that goes with `graph`: explicit, `checkpoint` state file, or the only one beside it.

    The `checkpoint` state file often holds absolute paths from the machine that trained the model;
    we take its basename and look beside the graph, as users copying a model directory expect.
    """
    if explicit is not None:
        prefix = _checkpoint_prefix(Path(explicit))
        if prefix is None:
            raise UserError(f"{explicit}: not a TensorFlow checkpoint (no .index/.data files, no V1 checkpoint file); check --checkpoint")
        return prefix
    folder = graph.parent
    state = folder / "checkpoint"
    if state.is_file():
        m = re.search(r'^model_checkpoint_path:\s*"(.*)"', state.read_text(errors="replace"), re.M)
        if m:
            named = Path(m.group(1))
            for candidate in (named if named.is_absolute() else folder / named, folder / named.name):
                prefix = _checkpoint_prefix(candidate)
                if prefix:
                    return prefix
    prefixes = sorted({p for f in folder.iterdir() if (p := _checkpoint_prefix(f))})
    if graph.name.endswith(".meta") and (own := _checkpoint_prefix(str(graph)[: -len(".meta")])):
        return own
    if len(prefixes) == 1:
        return prefixes[0]
    if not prefixes:
        raise UserError(
            f"{graph}: {graph_kind} but no checkpoint (.index + .data, or a V1 .ckpt) beside it; "
            "put the checkpoint next to it or pass --checkpoint PREFIX"
        )
    names = ", ".join(Path(p).name for p in prefixes[:5])
    raise UserError(f"{graph}: several checkpoints beside it ({names}); choose one with --checkpoint PREFIX")


def _checkpoint_prefix(path) -> str | None:
    """Return the checkpoint prefix for a V2 prefix/.index/.data path or a V1 file, else None.

    Works on the string: a checkpoint saved with the prefix "dir/" has files with an empty stem
    (dir/.index, dir/.meta, dir/.data-00000-of-00001), and its prefix is "dir/" (pathlib can't say it).
    """
    folder, name = os.path.split(str(path))
    folder = Path(folder or ".")
    for suffix in (".index", ".meta"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if ".data-" in name:
        name = name.split(".data-")[0]
    index = folder / (name + ".index")
    if index.is_file() and _ends_with_table_magic(index) and list(folder.glob(glob_escape(name) + ".data-*")):
        return os.path.join(str(folder), name)  # "dir/" for an empty stem
    single = folder / name
    if name and single.is_file() and not name.endswith(".index") and _ends_with_table_magic(single):
        return str(single)  # TF1 V1 checkpoint: a single table file
    return None


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _ends_with_table_magic(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            if f.tell() < 48:
                return False
            f.seek(-8, 2)
            return f.read(8) == TABLE_MAGIC
    except OSError:
        return False


def _describe_checkpoint(prefix: str) -> str:
    p = Path(prefix)
    return f"{p.name} (V2: .index + .data)" if Path(prefix + ".index").is_file() else f"{p.name} (V1)"


# --- small helpers ------------------------------------------------------------------------------


def _parse(message, path: Path, *, text: bool, what: str):
    from . import protos

    try:
        data = path.read_bytes()
        if text:
            protos.text_format.Parse(data.decode("utf-8"), message)
        else:
            message.ParseFromString(data)
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror}); check its permissions") from None
    except (protos.DecodeError, protos.text_format.ParseError, UnicodeDecodeError, RuntimeError, ValueError):
        raise UserError(f"{path}: does not parse as a {what} (it may be truncated or corrupt); re-export it") from None


def _json_loads(raw, path: Path, what: str) -> dict:
    try:
        doc = json.loads(_text(raw))
    except (ValueError, UnicodeDecodeError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: the Keras {what} is not a valid JSON object; re-save the model with model.save()")
    return doc


def _keras_config(config: dict, path: Path, what: str) -> dict:
    """Check the shape inspect relies on: a model class, and layers that are objects with a class.

    Old Keras 2 Sequential configs hold the layer list itself as "config"; it is normalised to
    {"layers": [...]} here so the rest of the code sees one shape.
    """
    def bad(why: str):
        return UserError(f"{path}: the Keras {what} is malformed ({why}); re-save the model with model.save()")

    cls = config.get("class_name")
    if not isinstance(cls, str) or not cls:
        raise bad("no model class_name")
    body = config.get("config", {})
    if isinstance(body, list):
        body = {"layers": body}
        config = {**config, "config": body}
    if not isinstance(body, dict):
        raise bad("config is not an object")
    layers = body.get("layers", [])
    if not isinstance(layers, list):
        raise bad("layers is not a list")
    stack = list(layers)
    while stack:  # nested models keep their own layer lists
        layer = stack.pop()
        if not isinstance(layer, dict) or not isinstance(layer.get("class_name"), str):
            raise bad("a layer is not an object with a class_name")
        inner = layer.get("config", {})
        if not isinstance(inner, dict):
            raise bad(f"layer {layer['class_name']} has no config object")
        if "layers" in inner:
            if not isinstance(inner["layers"], list):
                raise bad(f"nested model {layer['class_name']}: layers is not a list")
            stack.extend(inner["layers"])
    return config


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
