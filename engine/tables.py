"""Freezing TF1 SavedModels whose lookup tables are filled by their main op (text models).

Grappler cannot freeze such a signature as a TF2 function ("Failed to import metagraph": the
table's initializer, LookupTableImportV2 / InitializeTableV2, lives outside it). A TF1 session
can: loading runs the main op, the variables fold into constants, and the table initializers are
kept in the frozen graph as control inputs of each lookup, so any session or runtime that runs
the graph fills the table before it is read. Imported by engine.prepare only (TensorFlow).
"""

from __future__ import annotations

TABLE_OPS = {"HashTableV2", "HashTable", "MutableHashTableV2", "MutableDenseHashTableV2"}
TABLE_INIT_OPS = {"LookupTableImportV2", "InitializeTableV2", "InitializeTableFromTextFileV2", "LookupTableImport",
                  "InitializeTable"}
LOOKUP_OPS = {"LookupTableFindV2", "LookupTableFind", "LookupTableSizeV2"}


def has_tables(graph_def) -> bool:
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    return any(n.op in TABLE_OPS for n in nodes)


def freeze_in_session(tf, path: str, tags, signature: str):
    """→ (frozen GraphDef with table initializers, {signature key: tensor name})."""
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as sess:
        meta = v1.saved_model.loader.load(sess, list(tags or ["serve"]), path)
        sig = meta.signature_def[signature]
        names = {k: t.name for k, t in sig.inputs.items()}
        names.update({k: t.name for k, t in sig.outputs.items()})
        inits = [op.name for op in graph.get_operations() if op.type in TABLE_INIT_OPS]
        outputs = sorted({t.name.split(":")[0] for t in sig.outputs.values()})
        frozen = v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), outputs + inits)
    for node in frozen.node:  # fill the table before each read: the init becomes a dependency
        if node.op in LOOKUP_OPS:
            node.input.extend(f"^{name}" for name in inits if f"^{name}" not in node.input)
    return frozen, names


def string_constants(graph_def, limit: int = 1000) -> list[bytes]:
    """The strings in the graph's string Consts (a lookup table's keys), for verification's feeds."""
    found = []
    for node in graph_def.node:
        if node.op == "Const" and node.attr["dtype"].type == 7:  # DT_STRING
            found += [s for s in node.attr["value"].tensor.string_val if s]
    return found[:limit]
