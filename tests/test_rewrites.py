"""engine.rewrites: exact graph rewrites for a target's converter (Erfc as 1 - Erf for ONNX and TF.js)."""
import json

import numpy as np
import pytest

from conftest import SAMPLES, run_cli


@pytest.mark.timeout(600)
def test_keras3_gelu_converts_to_onnx_and_tfjs(tmp_path):
    """Keras 3's exact gelu freezes to Erfc: tf2onnx wrote the TF op into the model (onnxruntime refuses
    it) and TF.js refused the graph. Written as 1 - Erf, both verify, and so do the targets with Erfc."""
    import onnx

    out = tmp_path / "out"
    proc = run_cli("convert", SAMPLES / "keras3_gelu_attention.keras", "--to", "onnx,tfjs,openvino,tflite", "-o", out,
                   timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for t in json.loads((out / "report.json").read_text())["targets"]:
        assert t["status"] == "ok" and t["verification"]["passed"], t
    ops = {n.op_type for n in onnx.load(str(out / "onnx" / "model.onnx")).graph.node}
    assert "Erf" in ops and "Erfc" not in ops
    assert "Erfc written as 1 - Erf" in proc.stderr


@pytest.mark.timeout(300)
def test_keras3_attention_back_to_keras_needs_the_keras_format(tmp_path):
    """The same model to the keras target: legacy .h5 loses MultiHeadAttention's call (Keras raises
    "too many positional arguments" running it), and the failure names --keras-format keras, which works."""
    proc = run_cli("convert", SAMPLES / "keras3_gelu_attention.keras", "--to", "keras", "-o", tmp_path / "h5",
                   timeout=300)
    (target,) = json.loads((tmp_path / "h5" / "report.json").read_text())["targets"]
    assert proc.returncode != 0 and not target["verification"]["passed"]
    assert "--keras-format keras" in target["verification"]["error"]
    proc = run_cli("convert", SAMPLES / "keras3_gelu_attention.keras", "--to", "keras", "--keras-format", "keras",
                   "-o", tmp_path / "v3", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_erfc_in_a_loop_body_is_rewritten_too():
    """Inside a function (a While body kept as control flow v2) an op's outputs are named by its output
    args: the readers of Erfc's "y" must read Sub's "z"."""
    import tensorflow as tf

    from engine.rewrites import erfc_as_erf

    @tf.function(input_signature=[tf.TensorSpec([4], tf.float32)])
    def f(x):
        return tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, tf.math.erfc(v) * 0.5 + v), (0, x))[1]

    graph_def = f.get_concrete_function().graph.as_graph_def()
    assert any(n.op == "Erfc" for fn in graph_def.library.function for n in fn.node_def)
    rewritten = erfc_as_erf(graph_def)
    assert not any(n.op == "Erfc" for n in [*rewritten.node, *(n for fn in rewritten.library.function
                                                                for n in fn.node_def)])
    assert erfc_as_erf(rewritten) is rewritten  # nothing left to rewrite: the same graph back

    def run(g):
        with tf.Graph().as_default() as graph:
            tf.compat.v1.import_graph_def(g, name="")
            with tf.compat.v1.Session(graph=graph) as sess:
                return sess.run(f"{f.get_concrete_function().outputs[0].name}",
                                {f"{f.get_concrete_function().inputs[0].name}": np.array([-3, -0.5, 0.5, 3], np.float32)})

    np.testing.assert_allclose(run(rewritten), run(graph_def), atol=1e-6)
