"""What in a model file would run code or touch files when TensorFlow loads or runs it: the rules, as data.

Read from the parsed file alone, before anything loads, like Keras' safe_mode and ModelScan:
plan() refuses a model with any of these risks unless --trust-model (engine.sandbox still
confines the worker then). The tables below are the whole policy; tests/test_trust.py builds a
hostile file for every entry.

- RISKY_OPS: op types with side effects outside the graph (files, Python, network), wherever they
  are: the main graph, the function library, init ops. Save*/Restore* are the model's own only in
  its saver's subgraph (see _own_checkpoint_ops), and table initializers only on an asset.
- Op types not in tf_ops.txt (every op registered in TensorFlow, ~1,900 names, 35 KB; regenerate
  with `python -m engine.safety`) are custom ops: native code from a library beside the model.
- Keras: TFOpLambda/SlicingOpLambda whose function is not on PURE_TF_FUNCTIONS, RISKY_KERAS_CLASSES,
  any FILE_PATH_KEYS value that is a string (a file outside the model), registered_name or module
  values that are not plain Keras names (engine.keras_safety applies these).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

OPS_FILE = Path(__file__).with_name("tf_ops.txt")

WRITES = "writes files"
READS = "reads files"
PYTHON = "runs Python code"
NETWORK = "talks to the network"
RISKY_OPS: dict[str, str] = {
    **dict.fromkeys((
        "WriteFile", "Save", "SaveV2", "SaveSlices", "MergeV2Checkpoints", "DatasetToTFRecord",
        "ExperimentalDatasetToTFRecord", "SaveDataset", "SaveDatasetV2", "DistributedSave", "SnapshotDataset",
        "SnapshotDatasetV2", "CacheDataset", "CacheDatasetV2", "CreateSummaryFileWriter", "CreateSummaryDbWriter",
        "SummaryWriter", "WriteSummary", "WriteScalarSummary", "WriteHistogramSummary", "WriteImageSummary",
        "WriteAudioSummary", "WriteGraphSummary", "WriteRawProtoSummary", "CalibrationStatisticsSaver",
        "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
        "DebugNumericSummaryV2", "FileSystemSetConfiguration",
    ), WRITES),
    **dict.fromkeys((
        "ReadFile", "MatchingFiles", "MatchingFilesDataset", "ExperimentalMatchingFilesDataset", "Restore",
        "RestoreV2", "RestoreSlice", "DTensorRestoreV2", "ImmutableConst", "LoadAndRemapMatrix",
        "InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "WholeFileReader", "WholeFileReaderV2",
        "TextLineReader", "TextLineReaderV2", "TFRecordReader", "TFRecordReaderV2", "FixedLengthRecordReader",
        "FixedLengthRecordReaderV2", "LMDBReader", "TextLineDataset", "TFRecordDataset", "TFRecordDatasetV2",
        "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2",
        "ExperimentalCSVDataset", "LMDBDataset", "ExperimentalLMDBDataset", "SqlDataset", "ExperimentalSqlDataset",
        "LoadDataset", "SnapshotDatasetReader", "SnapshotChunkDataset", "ListSnapshotChunksDataset", "RecordInput",
        "DecodeProtoV2",
    ), READS),
    **dict.fromkeys(("PyFunc", "PyFuncStateless", "EagerPyFunc", "GeneratorDataset"), PYTHON),
    **dict.fromkeys((
        "RpcClient", "RpcServer", "RpcServerStart", "RpcServerRegister", "RpcCall", "RemoteCall",
        "DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4",
        "RegisterDataset", "RegisterDatasetV2", "CollectiveInitializeCommunicator",
    ), NETWORK),
}
# Ops that are harmless unless an attribute sends their output to a file.
FILE_ATTRS: dict[str, tuple[str, str]] = {"PrintV2": ("output_stream", "file://")}
CHECKPOINT_WRITES = {"Save", "SaveV2", "SaveSlices", "MergeV2Checkpoints"}
CHECKPOINT_READS = {"Restore", "RestoreV2", "RestoreSlice"}
TABLE_FROM_FILE = {"InitializeTableFromTextFile", "InitializeTableFromTextFileV2"}
# Collections whose ops a TF1 SavedModel loader runs on load (even for --no-verify).
INIT_COLLECTIONS = ("saved_model_main_op", "legacy_init_op", "main_op", "table_initializer")
INIT_SIGNATURES = ("__saved_model_init_op",)
SAVE_SCOPE = re.compile(r"^save(_\d+)?/")
FUNCTION_CALL_ATTRS = ("f", "then_branch", "else_branch", "body", "cond", "branches")  # attrs naming a function; the one list
MAX_REPORTED = 20

# Keras: the TF API functions a TFOpLambda may call (tf_keras resolves any name in the TF API and
# calls it while rebuilding the model: io.write_file, load_op_library, ...). Namespaces are pure math.
PURE_TF_NAMESPACES = ("math.", "nn.", "linalg.", "signal.", "image.", "bitwise.", "__operators__.", "random.")
PURE_TF_FUNCTIONS = frozenset("""
abs add add_n argmax argmin argsort broadcast_to cast clip_by_value complex concat cos cosh cumsum
divide einsum equal exp expand_dims eye fill floor gather gather_nd greater greater_equal identity less
less_equal linspace logical_and logical_not logical_or matmul maximum minimum multiply negative norm not_equal
one_hot ones ones_like pad pow range rank reduce_all reduce_any reduce_logsumexp reduce_max reduce_mean
reduce_min reduce_prod reduce_sum repeat reshape reverse roll round scatter_nd searchsorted shape sigmoid
sign sin sinh size slice sort split sqrt square squeeze stack stop_gradient strided_slice subtract tan tanh
tensor_scatter_nd_update tile transpose truediv unstack where zeros zeros_like
""".split())
TFOP_LAMBDA_CLASSES = {"TFOpLambda", "SlicingOpLambda"}
RISKY_KERAS_CLASSES = {
    "TFSMLayer": "loads another SavedModel from a path in its config",
    "TorchModuleWrapper": "unpickles a PyTorch module",
}
# Layer config keys whose string value is a file TensorFlow or Keras would read (StringLookup,
# IntegerLookup, TextVectorization vocabularies, TFSMLayer's model); lists of words are inline data.
FILE_PATH_KEYS = {"vocabulary", "idf_weights", "filepath", "file_path", "vocabulary_path", "vocab_file", "path"}
KERAS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KERAS_MODULE = re.compile(r"^keras(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def pure_tf_function(name) -> bool:
    """A TFOpLambda `function` that only computes: a pure namespace or a listed op."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
        return False
    return name in PURE_TF_FUNCTIONS or any(name.startswith(p) and "." not in name[len(p):] for p in PURE_TF_NAMESPACES)


@functools.cache
def registered_ops() -> frozenset[str]:
    return frozenset(line.strip() for line in OPS_FILE.read_text().splitlines() if line.strip() and not line.startswith("#"))


# --- graphs ------------------------------------------------------------------------------------


def custom_ops(graph) -> list[str]:
    """Op types in `graph` (GraphDef, functions included) that TensorFlow does not register: custom ops,
    which need --load-op-library to load and which no target has a conversion for."""
    functions = {f.signature.name for f in graph.library.function}
    ops = {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}
    return sorted(op for op in ops if op not in registered_ops() and op not in functions)


def graph_risks(graph, *, outputs=(), saver=None, init_roots=(), asset_tensors=()) -> list[str]:
    """One line per node of `graph` (GraphDef, with its library) that would act outside the graph.

    outputs: the tensors converted and verified; saver: the meta graph's SaverDef, if any;
    init_roots: nodes a SavedModel loader runs on load; asset_tensors: the SavedModel's asset paths.
    """
    functions = {f.signature.name: f for f in graph.library.function}
    nodes = {n.name: n for n in graph.node}
    own_nodes, own_functions = _own_checkpoint_ops(graph, nodes, functions, outputs, saver, init_roots)
    run_on_load = _ancestors(init_roots, nodes)
    assets = {t.split(":")[0] for t in asset_tensors}
    risks: list[str] = []
    places = [(n, "the main graph", None) for n in graph.node]
    places += [(n, f"function {name!r}", f) for name, f in functions.items() for n in f.node_def]
    for node, where, function in places:
        if len(risks) >= MAX_REPORTED:
            break
        if function is None and node.name in run_on_load:
            where = "the init op, which runs when the model loads"
        why = _node_risk(node, functions)
        if why is None:
            continue
        if node.op in CHECKPOINT_WRITES | CHECKPOINT_READS:
            if function is None and node.name in own_nodes:
                continue
            allowed = own_functions.get(function.signature.name, set()) if function is not None else set()
            if ("write" if node.op in CHECKPOINT_WRITES else "read") in allowed:
                continue
        if node.op in TABLE_FROM_FILE and _reads_asset(node, nodes if function is None else None, function, assets):
            continue
        risks.append(f"{node.op} node {node.name!r} in {where}: {why}")
    return risks


def _node_risk(node, functions) -> str | None:
    if node.op in RISKY_OPS:
        return RISKY_OPS[node.op]
    if node.op in FILE_ATTRS:
        attr, prefix = FILE_ATTRS[node.op]
        if attr in node.attr and node.attr[attr].s.decode(errors="replace").startswith(prefix):
            return WRITES
        return None
    if node.op not in registered_ops() and node.op not in functions:
        return "not a TensorFlow op: a custom op, whose native code would be loaded from a library"
    return None


def _own_checkpoint_ops(graph, nodes, functions, outputs, saver, init_roots):
    """The model's own variable save/restore: nodes of the saver's subgraph (or, without a SaverDef,
    a save/ scope) that nothing converted or run on load depends on; and for functions only called
    from there, {function: {"read"} or {"read", "write"}} (the restore path must not save)."""
    runs = _ancestors([t.split(":")[0] for t in outputs] + list(init_roots), nodes)
    if saver is not None and (saver.restore_op_name or saver.save_tensor_name):
        restore = _ancestors([saver.restore_op_name.split(":")[0]], nodes)  # runs on load: may only read
        save = _ancestors([saver.save_tensor_name.split(":")[0]], nodes) - restore  # never run by us
    else:
        restore, save = set(), {n for n in nodes if SAVE_SCOPE.match(n)}
    own_nodes = {n for n in save if n not in runs}
    own_nodes |= {n for n in restore if n not in runs and nodes[n].op in CHECKPOINT_READS}
    # Functions: what the save path calls may save and restore, what the restore path calls may restore;
    # a function also reachable from anything else (graph nodes, other functions) owns nothing.
    others = [nodes[n] for n in nodes if n not in save | restore]
    elsewhere = _function_closure(_called(others), functions)
    own_functions = {}
    for name in _function_closure(_called(nodes[n] for n in restore if n in nodes), functions) - elsewhere:
        own_functions[name] = {"read"}
    for name in _function_closure(_called(nodes[n] for n in save if n in nodes), functions) - elsewhere:
        own_functions.setdefault(name, set()).update({"read", "write"})
    # A function both paths call is restore-path code too: it runs on load, so it may not save.
    restore_called = _function_closure(_called(nodes[n] for n in restore if n in nodes), functions)
    for name in restore_called & set(own_functions):
        own_functions[name] = {"read"}
    return own_nodes, own_functions


def _reads_asset(node, nodes, function, assets: set[str]) -> bool:
    """A table initializer whose file name is a SavedModel asset (TF1: an asset tensor; TF2: a
    function argument, which the loader binds to the asset's path), not a constant path."""
    if len(node.input) < 2:
        return False
    source = node.input[1].split(":")[0].lstrip("^")
    if function is not None:
        return source in {a.name for a in function.signature.input_arg}
    seen = set()
    while source in nodes and source not in seen:
        seen.add(source)
        if source in assets:
            return True
        if nodes[source].op != "Identity" or not nodes[source].input:
            return False
        source = nodes[source].input[0].split(":")[0]
    return False


def _ancestors(roots, nodes) -> set[str]:
    seen, stack = set(), [r for r in roots if r]
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        stack.extend(i.lstrip("^").split(":")[0] for i in nodes[name].input)
    return seen


def function_calls(nodes) -> list[str]:
    """The functions `nodes` name in their call attrs (FUNCTION_CALL_ATTRS: f, then_branch, ...)."""
    called = []
    for n in nodes:
        for key in FUNCTION_CALL_ATTRS:
            if key in n.attr:
                value = n.attr[key]
                called += [value.func.name] if value.func.name else [f.name for f in value.list.func]
    return called


def _called(nodes) -> list[str]:
    nodes = list(nodes)  # may be a generator: read twice
    return [n.op for n in nodes] + function_calls(nodes)  # a node whose op is a library function calls it too


def _function_closure(names, functions) -> set[str]:
    seen, stack = set(), list(names)
    while stack:
        name = stack.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        stack += _called(functions[name].node_def)
    return seen


def saved_model_risks(meta, outputs) -> list[str]:
    """graph_risks for a SavedModel's meta graph: its saver, init ops and assets."""
    init_roots = []
    for key in INIT_COLLECTIONS:
        if key in meta.collection_def:
            col = meta.collection_def[key]
            init_roots += [n.split(":")[0] for n in col.node_list.value]
    for key in INIT_SIGNATURES:
        if key in meta.signature_def:
            init_roots += [t.name.split(":")[0] for t in meta.signature_def[key].outputs.values()]
    assets = [a.tensor_info.name for a in meta.asset_file_def]
    saver = meta.saver_def if meta.HasField("saver_def") else None
    return graph_risks(meta.graph_def, outputs=outputs, saver=saver, init_roots=init_roots, asset_tensors=assets)


# --- regenerating tf_ops.txt (needs TensorFlow) ------------------------------------------------


def write_ops_file(path: Path = OPS_FILE) -> int:
    import tensorflow as tf
    from tensorflow.core.framework import op_def_pb2
    from tensorflow.python.client import pywrap_tf_session

    ops = op_def_pb2.OpList()
    ops.ParseFromString(pywrap_tf_session.TF_GetBuffer(pywrap_tf_session.TF_GetAllOpList()))
    names = sorted({op.name for op in ops.op})
    path.write_text(f"# Every op type registered in TensorFlow {tf.__version__} (kernels and Python-visible ops), "
                    "for engine.safety.\n# Generated by python -m engine.safety; do not edit.\n" + "\n".join(names) + "\n")
    return len(names)


if __name__ == "__main__":
    print(f"wrote {write_ops_file()} op names to {OPS_FILE}")
