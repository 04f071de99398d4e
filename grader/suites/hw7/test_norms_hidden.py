"""Hidden checks of hw7: the public checks' properties on shapes, scales and rates they do not show.

They reuse the public files' references and helpers (loaded by path). Each targets what the public
checks could miss: sizes hard-coded to the public ones, a single normalised value (D = 1, one channel
per group), E[x^2] - E[x]^2 cancelling for inputs far from zero, a list as normalized_shape, and
dropout rates other than 0.3 and 0.5 on float32 inputs of higher rank.
"""
from __future__ import annotations

import pytest
import torch

from kit.grader.suite import fetch, sibling

C = sibling(__file__, "common.py")
LN = sibling(__file__, "test_layernorm.py")
GN = sibling(__file__, "test_groupnorm.py")
DROP = sibling(__file__, "test_dropout.py")

pytestmark = pytest.mark.hidden

PRECISION = ("the variance lost precision: E[x^2] - E[x]^2 cancels for inputs far from zero; compute the mean "
             "of (x - mean)^2")


def compare(student, child, ref: dict, what: str, make, formula, rough: str | None = None) -> None:
    """Output, input gradient and parameter gradients of `make()` (the student's layer) against `ref`;
    a value that shows only a slip of common.SLIPS (graded by a public check) passes, as it does there.

    `formula(x, state, **slip)`: the layer by the formula. `rough`: the likely cause to name when the output is
    right to 1e-3 but not to 1e-7."""
    m = make()
    xs = child.leaf(ref["x"])
    out = m(xs)
    # finite=False: the unbiased variance of one element is 0 / 0, and that slip is ln_forward's to charge;
    # close_here compares where NaN and inf are
    got = fetch(out, finite=False)

    def elsewhere(key: str):
        return lambda: [v[key] for v in C.slipped(formula, ref)]

    mistakes = None
    if rough and isinstance(got, torch.Tensor) and got.shape == ref["output"].shape and \
            torch.allclose(got.double(), ref["output"], rtol=1e-3, atol=1e-3):
        mistakes = lambda: {rough: got}  # noqa: E731
    C.close_here(got, ref["output"], f"{what}: output", mistakes, elsewhere("output"))
    (out * ref["g"]).sum().backward()
    grad, grads = fetch(xs.grad, child.grads(m), finite=False)
    C.close_here(grad, ref["input.grad"], f"{what}: input.grad", None, elsewhere("input.grad"))
    C.close_here(grads, ref["grads"], f"{what}: parameter gradients", None, elsewhere("grads"))


def ln(dims: tuple[int, ...]):
    return lambda t, state, **slip: LN.formula(t, dims, 1e-5, state, **slip)


def gn(groups: int):
    return lambda t, state, **slip: GN.formula(t, groups, 1e-5, state, **slip)


# --- MyLayerNorm --------------------------------------------------------------------------------------


@pytest.mark.component("MyLayerNorm")
@pytest.mark.parametrize("shape,normalized", [((2, 3, 7), 7), ((5, 2, 3, 2), (2, 3, 2)), ((4, 9), (4, 9))],
                         ids=["d7", "three_dims", "whole_input"])
def test_hidden_ln_shapes(student, child, shape, normalized):
    """other sizes and numbers of normalised dimensions (7; (2, 3, 2); the whole (4, 9) input)"""
    ref = LN.layer_norm(shape=shape, normalized_shape=normalized, seed=21)
    dims = tuple(range(-len(normalized) if isinstance(normalized, tuple) else -1, 0))
    compare(student, child, ref, f"normalized_shape={normalized}", lambda: LN.student_copy(student, ref, normalized),
            ln(dims))


@pytest.mark.component("MyLayerNorm")
def test_hidden_ln_list_shape(student, child):
    """normalized_shape given as a list [3, 4]"""
    ref = LN.layer_norm(shape=(2, 3, 4), normalized_shape=(3, 4), seed=22)
    compare(student, child, ref, "normalized_shape=[3, 4]", lambda: LN.student_copy(student, ref, [3, 4]), ln((-2, -1)))


@pytest.mark.component("MyLayerNorm")
def test_hidden_ln_size_one(student, child):
    """normalized_shape=1: every value is its own mean, the output is the bias"""
    ref = LN.layer_norm(shape=(3, 4, 1), normalized_shape=1, seed=23)
    compare(student, child, ref, "normalized_shape=1", lambda: LN.student_copy(student, ref, 1), ln((-1,)))


@pytest.mark.component("MyLayerNorm")
@pytest.mark.points(2)
def test_hidden_ln_large_mean(student, child):
    """inputs around 1e6 with spread ~1: the variance must not be computed as E[x^2] - E[x]^2"""
    ref = LN.layer_norm(shape=(3, 16), normalized_shape=16, seed=24, loc=1e6)
    compare(student, child, ref, "inputs around 1e6", lambda: LN.student_copy(student, ref, 16), ln((-1,)),
            rough=PRECISION)


# --- MyGroupNorm --------------------------------------------------------------------------------------


@pytest.mark.component("MyGroupNorm")
@pytest.mark.parametrize("shape,groups", [((2, 8, 3, 3), 1), ((2, 4, 3, 5), 4), ((1, 12, 2, 2), 4)],
                         ids=["one_group", "group_per_channel", "batch_of_one"])
def test_hidden_gn_groups(student, child, shape, groups):
    """one group; one group per channel; a batch of one with 4 groups of 3 channels"""
    ref = GN.group_norm(shape=shape, num_groups=groups, seed=31)
    compare(student, child, ref, f"{groups} groups of {shape[1] // groups} channels",
            lambda: GN.student_copy(student, ref, groups), gn(groups))


@pytest.mark.component("MyGroupNorm")
@pytest.mark.points(2)
def test_hidden_gn_large_mean(student, child):
    """inputs around 1e6 with spread ~1: the variance must not be computed as E[x^2] - E[x]^2"""
    ref = GN.group_norm(shape=(2, 4, 4, 4), num_groups=2, seed=32, loc=1e6)
    compare(student, child, ref, "inputs around 1e6", lambda: GN.student_copy(student, ref, 2), gn(2), rough=PRECISION)


# --- MyDropout ----------------------------------------------------------------------------------------

SHAPE_4D = (4, 5, 20, 50)  # 20,000 elements: the public rate bound holds with the same probability


@pytest.mark.component("MyDropout")
@pytest.mark.parametrize("p", [0.1, 0.8])
def test_hidden_dropout_rate(student, child, p):
    """p=0.1 and p=0.8 on a float32 (4, 5, 20, 50) input: the share of zeros is p ± 2.5%"""
    x, _ = DROP.inputs(seed=41, shape=SHAPE_4D, dtype=torch.float32)
    out = C.tensor_like(fetch(DROP.trained(student, child, p, seed=41)(x)), x, "output")
    DROP.drop_rate(out, p, "output")


@pytest.mark.component("MyDropout")
def test_hidden_dropout_scale(student, child):
    """p=0.8 on a float32 (4, 5, 20, 50) input: every kept element is x / (1 - p) = 5x"""
    x, _ = DROP.inputs(seed=42, shape=SHAPE_4D, dtype=torch.float32)
    out = C.tensor_like(fetch(DROP.trained(student, child, 0.8, seed=42)(x)), x, "output")
    DROP.kept_scaled(out, x, 0.8, "output")
