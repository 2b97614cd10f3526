"""engine.verify.compare: which differences pass."""

import numpy as np

from engine.verify import compare


def test_quantized_floats_are_judged_relative_to_the_output():
    ref = {"logits": np.array([100.0, -50.0, 3.0], np.float32)}
    got = {"logits": np.array([100.1, -50.0, 3.0], np.float32)}  # 0.1 % of the largest value
    check = compare(ref, got, 1e-2, relative=True)
    assert check["passed"] and check["tolerance_on"] == "max_rel_diff"
    assert not compare(ref, got, 1e-4)["passed"]  # float32 targets: abs 1e-4


def test_integer_outputs_must_match_exactly_even_when_relative():
    ref = {"probs": np.array([[0.2, 0.8]], np.float32), "class_id": np.array([999, 3], np.int64)}
    wrong = {"probs": ref["probs"], "class_id": np.array([999, 7], np.int64)}  # 4 / 999 = 4e-3 relative
    check = compare(ref, wrong, 1e-1, relative=True)
    assert not check["passed"] and check["outputs"]["class_id"]["max_rel_diff"] < 1e-1
    assert compare(ref, {**wrong, "class_id": ref["class_id"]}, 1e-1, relative=True)["passed"]
    assert not compare({"mask": np.array([True, False])}, {"mask": np.array([True, True])}, 1e-1, relative=True)["passed"]
