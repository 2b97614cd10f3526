"""The text outline (inputs → main blocks → outputs) on real sample forms, without TensorFlow."""

from engine.detect import detect
from engine.inspect import inspect
from engine.outline import MAX_BLOCKS, outline
from engine.protos import GraphDef

from conftest import SAMPLES


def blocks(lines):
    return [line.split()[0] for line in lines if line.startswith("  ")]


def test_slim_graph_blocks_are_its_scopes_under_the_shared_one():
    lines = outline(detect(SAMPLES / "slim_checkpoint" / "inception_v1_inference_graph.pb"))
    assert lines[0].split() == ["in", "input", "float32", "[-1,", "32,", "32,", "3]"]
    assert blocks(lines) == ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Logits"]  # "InceptionV1/" is stripped
    assert "Conv2D, Relu" in lines[1]
    assert "VariableV2" not in "\n".join(lines) and "Initializer" not in "\n".join(lines)  # weights, not blocks
    assert lines[-1].startswith("out  InceptionV1/Logits/Predictions/Reshape_1")


def test_keras_saved_model_blocks_come_from_inside_its_functions():
    # The graph itself holds only a call; the layers are in the function bodies it calls.
    lines = outline(inspect(detect(SAMPLES / "image_classifier")))
    assert blocks(lines) == ["conv_1", "maxpool_1", "pool_1", "probs_1"]
    assert "MatMul, BiasAdd, Softmax" in lines[-2]
    assert lines[-1].split()[:2] == ["out", "probs"]


def test_keras_file_lists_its_layers():
    lines = outline(detect(SAMPLES / "image_classifier.keras"))
    assert blocks(lines) == ["conv", "maxpool", "pool", "probs"]
    assert lines[1].split() == ["conv", "Conv2D"]


def test_control_flow_branches_belong_to_the_node_that_runs_them():
    lines = outline(detect(SAMPLES / "metagraph" / "model.meta"))
    assert blocks(lines) == ["hidden", "Relu", "dropout", "logits", "probs"]
    assert [line.split()[1] for line in lines if line.startswith("in ")] == ["x", "is_training"]


def test_long_graphs_merge_neighbouring_blocks_then_elide_the_middle(tmp_path):
    graph = GraphDef()
    graph.node.add(name="x", op="Placeholder")
    previous = "x"
    names = ["stem_conv"] + [f"stage{s}_block{b}" for s in range(1, 4) for b in range(8)]
    names += [f"head{k}" for k in range(20)]
    for name in names:
        node = graph.node.add(name=f"{name}/Conv2D", op="Conv2D")
        node.input.append(previous)
        previous = node.name
    graph.node.add(name="y", op="Softmax").input.append(previous)
    (tmp_path / "long.pb").write_bytes(graph.SerializeToString())
    lines = outline(detect(tmp_path / "long.pb"))
    shown = blocks(lines)
    assert len(shown) <= MAX_BLOCKS + 1
    assert shown[:4] == ["stem_conv", "stage1*", "stage2*", "stage3*"]  # 8 blocks each, merged
    assert "(8)" in lines[2] and "Conv2D×8" in lines[2]
    assert "…" in shown and shown[-1] == "y"

