"""engine.verify: which differences pass, and which inputs verification draws."""

import numpy as np
import pytest

from engine.backends import FLOAT32_TOLERANCE, Tolerance, quantized_tolerance
from engine.errors import UserError
from engine.inspect import TensorInfo
from engine.verify import compare, make_feeds


def test_quantized_floats_are_judged_relative_to_the_output():
    ref = {"logits": np.array([100.0, -50.0, 3.0], np.float32)}
    got = {"logits": np.array([100.1, -50.0, 3.0], np.float32)}  # 0.1 % of the largest value
    check = compare(ref, got, quantized_tolerance(16))
    assert check["passed"] and check["tolerance_on"] == "max_rel_diff" and check["atol_scaled"]
    assert not compare(ref, got, FLOAT32_TOLERANCE)["passed"]  # float32: 1e-3 relative is too much
    small = {"p": np.array([1e-3, 2e-3], np.float32)}
    assert not compare(small, {"p": small["p"] * 1.5}, quantized_tolerance(8))["passed"]  # 50 % off


def test_integer_outputs_must_match_exactly_even_when_relative():
    ref = {"probs": np.array([[0.2, 0.8]], np.float32), "class_id": np.array([999, 3], np.int64)}
    wrong = {"probs": ref["probs"], "class_id": np.array([999, 7], np.int64)}  # 4 / 999 = 4e-3 relative
    check = compare(ref, wrong, quantized_tolerance(8))
    assert not check["passed"] and check["outputs"]["class_id"]["max_rel_diff"] < 1e-1
    assert compare(ref, {**wrong, "class_id": ref["class_id"]}, quantized_tolerance(8))["passed"]
    mask = {"mask": np.array([True, False])}
    assert not compare(mask, {"mask": np.array([True, True])}, quantized_tolerance(8))["passed"]


def test_float32_is_allclose_per_element():
    """Large activations off by 1.3e-4 abs (1.3e-8 relative) pass; small ones off by as much fail."""
    ref = np.array([[1e4, 2e4], [1e-3, 0.5]], np.float32)
    big = ref.copy()
    big[0] += 1.3e-4 * 1e3  # 0.13 abs at 1e4: within 1e-4 + 1e-4 * 1e4
    check = compare({"y": ref}, {"y": big}, FLOAT32_TOLERANCE)
    assert check["passed"] and check["max_abs_diff"] > 1e-4, check
    small = ref.copy()
    small[1, 0] += 3e-4  # at 1e-3: bound 1e-4 + 1e-7
    check = compare({"y": ref}, {"y": small}, FLOAT32_TOLERANCE)
    out = check["outputs"]["y"]
    assert not check["passed"] and out["out_of_bound"] == 0.25 and out["worst_index"] == [1, 0]
    assert out["shape"] == [2, 2] and {"max_abs_diff", "max_rel_diff", "atol", "rtol"} <= set(check)


def test_scalar_outputs_compare():
    check = compare({"energy": np.float32(3.0)}, {"energy": np.float32(3.5)}, FLOAT32_TOLERANCE)
    assert not check["passed"] and check["outputs"]["energy"]["shape"] == [] and check["outputs"]["energy"]["worst_index"] == []


def test_nan_and_inf_agree_only_with_themselves():
    ref = np.array([np.inf, np.nan, 1.0])
    assert compare({"y": ref}, {"y": ref.copy()}, FLOAT32_TOLERANCE)["passed"]
    assert not compare({"y": ref}, {"y": np.array([np.inf, 0.0, 1.0])}, FLOAT32_TOLERANCE)["passed"]


def test_an_empty_output_never_passes():
    empty = {"cropped": np.zeros((2, 0), np.float32)}
    check = compare(empty, empty, Tolerance(1.0, 1.0))
    assert not check["passed"] and "empty" in check["error"] and "--input" in check["error"]


def test_indices_stay_below_the_table_size():
    tokens = TensorInfo("tokens", "int32", [-1, 6])
    feeds = make_feeds([tokens], index_limits={"tokens": 3})
    assert feeds["tokens"].max() < 3 and feeds["tokens"].shape == (2, 6)
    assert make_feeds([tokens])["tokens"].max() >= 3  # without a table: [0, 10)


def test_string_inputs_get_words_some_from_the_vocabulary():
    feeds = make_feeds([TensorInfo("text", "string", [-1, 4])], vocabulary=[b"hello"])
    words = feeds["text"]
    assert words.shape == (2, 4) and all(isinstance(w, bytes) for w in words.ravel())
    assert b"hello" in set(words.ravel()) and len(set(words.ravel())) > 1


def test_other_dtypes_fail_in_one_line_naming_the_fix():
    with pytest.raises(UserError, match="--output NAME.*--no-verify"):
        make_feeds([TensorInfo("handle", "variant", [])])
