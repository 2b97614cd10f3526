"""The shared step model's additions: answers that reload the model, the command they make."""

import shutil

import pytest

from conftest import SAMPLES
from engine.errors import UserError
from engine.options import ConversionOptions
from wizard.steps import STEPS, Answers, back_question, loading_snippet, questions, review_action


def test_a_new_tag_reinspects_the_model_and_shows_in_the_command():
    a = Answers()
    a.apply("model", str(SAMPLES / "saved_model_tf1"))
    assert [q.key for q in questions("graph", a)] == ["tag"]
    a.apply("tag", "serve,gpu")
    assert a.info.tag == ["serve", "gpu"]
    assert "--tag serve,gpu" in a.options().command()
    a.apply("tag", "serve")
    assert "--tag" not in a.options().command()  # back to the engine's own choice: no flag


def test_a_model_that_does_not_load_is_not_taken():
    a = Answers()
    a.apply("model", str(SAMPLES / "frozen_graph.pb"))
    with pytest.raises(UserError, match="no such file"):
        a.apply("model", str(SAMPLES / "missing.pb"))
    assert a.model == str(SAMPLES / "frozen_graph.pb") and a.info is not None


def test_home_relative_paths_are_expanded_for_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copy(SAMPLES / "frozen_graph.pb", tmp_path / "m.pb")
    a = Answers()
    a.apply("model", " ~/m.pb ")
    assert a.options().model == str(tmp_path / "m.pb")  # no shell will expand a quoted '~' later


def test_a_shape_written_differently_is_no_override():
    a = Answers()
    a.apply("model", str(SAMPLES / "frozen_graph.pb"))
    a.apply("shape:input", "?, 8")
    assert a.options().inputs == ()
    a.apply("shape:input", "1,8")
    assert a.options().inputs == (("input", (1, 8)),)


def test_review_actions_and_steps_to_go_back_to():
    assert [v for v, _ in review_action(dryrun=False).choices] == ["run", "print", "check", "back"]
    assert [v for v, _ in review_action(dryrun=True).choices] == ["print", "check", "back"]
    assert [v for v, _ in back_question().choices] == ["model", "graph", "shapes", "preprocess", "targets", "review"]
    assert all(step.teach for step in STEPS)


def test_loading_snippets_feed_the_real_input_names_dtypes_and_shapes():
    # (tests/test_snippets.py runs them on a real conversion)
    report = {"interface": {"inputs": [{"name": "image", "dtype": "float32", "shape": [-1, 32, 32, 3]},
                                       {"name": "ids", "dtype": "int64", "shape": [2, -1]}], "outputs": ["probs"]}}
    options = ConversionOptions(model="m", targets=("onnx",), output_dir="o", inputs_as_nchw=("image",))
    for target, path in (("onnx", "o/onnx/model.onnx"), ("tfjs", "o/tfjs/model.json"),
                         ("openvino", "o/openvino/model.xml"), ("tflite", "o/tflite/model.tflite")):
        snippet = loading_snippet(target, path, report, options)
        assert f'"{path}"' in snippet or '"o/tfjs/"' in snippet
        assert '"image"' in snippet and '"ids"' in snippet and "[2, 8]" in snippet
    assert "np.zeros([1, 3, 32, 32], np.float32)" in loading_snippet("onnx", "m.onnx", report, options)  # NCHW
    assert "np.zeros([1, 32, 32, 3], np.float32)" in loading_snippet("openvino", "m.xml", report, options)
    assert 'tf.zeros([2, 8], "int32")' in loading_snippet("tfjs", "o/tfjs/model.json", report, options)
    layers = loading_snippet("tfjs", "m.json", report, options.replace(tfjs_format="layers"))
    assert "loadLayersModel" in layers and "model.predict([" in layers


def test_the_targets_step_asks_what_each_backend_offers_and_refuses_as_the_cli_does():
    from engine.availability import unavailable
    from engine.backends import TARGETS, all_backends
    from engine.options import ConversionOptions

    a = Answers()
    a.apply("model", str(SAMPLES / "frozen_graph.pb"))
    a.targets = list(TARGETS)
    asked = {q.key: q for q in questions("targets", a)}
    for b in all_backends():
        if b.name == "keras":  # offered for Keras-shaped models only: a frozen graph has no layers to save
            assert b.name not in dict(asked["targets"].choices)
            continue
        note = dict(asked["targets"].choices)[b.name]  # its title and note, or (not installed) why not
        assert note in (f"{b.title}: {b.note}", unavailable().get(b.name)) or note.startswith(f"{b.title}: blocked by")
        assert [m for m, _ in asked[f"quantize:{b.name}"].choices] == ["", *b.quantizations]
    with pytest.raises(UserError) as cli:
        ConversionOptions(model="m", targets=("onnx",), output_dir="o", opset=19)
    assert asked["opset"].validate("19") == str(cli.value) and asked["opset"].validate("") is None
    a.opset, a.preprocessing, a.targets = "17", "mobilenet", ["tfjs", "onnx"]
    assert "--opset 17" in a.options().command()
