"""assert_close: what a student reads when a value is wrong."""
import pytest
import torch

from kit.grader.compare import assert_close, difference
from kit.grader.remote import CheckFailed


def message(actual, expected, **kw):
    with pytest.raises(CheckFailed) as info:
        assert_close(actual, expected, name="out", **kw)
    return str(info.value)


def test_close_values_pass():
    x = torch.randn(3, 4, dtype=torch.float64)
    assert_close(x + 1e-9, x, name="out")


def test_value_difference_says_how_much_and_where():
    expected = torch.zeros(2, 3, dtype=torch.float64)
    actual = expected.clone()
    actual[1, 2] = 0.5
    text = message(actual, expected)
    assert "mismatched elements: 1 / 6" in text
    assert "greatest absolute difference: 0.5 at index (1, 2)" in text
    assert "got 0.5, expected 0" in text
    assert "greatest relative difference: inf at index (1, 2) (expected 0)" in text


def test_relative_difference_where_nothing_is_zero():
    expected = torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64)
    text = message(torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64), expected)
    assert "greatest relative difference: 1 at index (1,)\n" in text + "\n"
    assert "expected 0" not in text and "not 0" not in text


def test_relative_difference_is_honest_about_expected_zeros():
    """|a - e| / |e| is infinite where e is 0: never a huge finite number, and the finite figure says what it covers."""
    expected = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    text = message(torch.tensor([0.5, 1.5, 2.0], dtype=torch.float64), expected)
    assert "greatest relative difference: inf at index (0,) (expected 0); 0.5 at index (1,) " \
           "(over the elements whose expected value is not 0)" in text
    assert "e+" not in text


def test_zero_within_tolerance_is_not_reported_as_inf():
    text = message(torch.tensor([1e-9, 1.5], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert "mismatched elements: 1 / 2" in text
    assert "greatest relative difference: 0.5 at index (1,) (over the elements whose expected value is not 0)" in text
    assert "inf" not in text


def test_shape_dtype_device_come_first():
    assert "shape (3, 2) but expected (2, 3) (transposed?)" in message(torch.zeros(3, 2), torch.zeros(2, 3))
    assert "dtype float32 but expected float64" in message(torch.zeros(2), torch.zeros(2, dtype=torch.float64))


def test_nan_is_never_close():
    text = message(torch.tensor([1.0, float("nan")]), torch.tensor([1.0, 2.0]))
    assert "1 NaN value(s)" in text and "index (1,)" in text


def test_known_mistake_is_named():
    expected = torch.randn(3, 4, dtype=torch.float64)
    text = message(expected.T.contiguous().T * 2, expected, mistakes={"doubled": expected * 2})
    assert "likely cause: doubled" in text


def test_dicts_compare_keys_then_values():
    want = {"weight": torch.ones(2), "bias": torch.zeros(1)}
    assert "keys differ: missing bias" in message({"weight": torch.ones(2)}, want)
    assert "out['bias']" in message({"weight": torch.ones(2), "bias": torch.ones(1)}, want)
    assert difference(want, want, name="x") is None


def test_none_instead_of_tensor():
    assert "expected a tensor of shape (2,) but got NoneType" in message(None, torch.zeros(2))


def test_complex_values_keep_their_imaginary_part():
    expected = torch.tensor([1 + 2j, 3 - 1j], dtype=torch.complex128)
    assert difference(expected.clone(), expected, name="z") is None
    problem = difference(expected.conj(), expected, name="z")
    assert problem is not None and "values differ" in problem and "1-2j" in problem and "1+2j" in problem
    assert difference(expected.to(torch.complex64), expected, name="z", check_dtype=False) is None
