"""hw1 hidden checks: the same comparisons on shapes and values the public checks do not show."""
import pytest
import torch
from torch import nn

from kit.grader.suite import assert_close, fetch, reference, sibling

public = sibling(__file__, "test_my_linear.py")

pytestmark = [pytest.mark.hidden, pytest.mark.component("MyLinear")]


@reference
def linear_case(in_features, out_features, x_shape, seed, scale=1.0, bias=True) -> dict:
    """nn.Linear (float64) after torch.manual_seed(seed), an input and an upstream gradient drawn after it,
    the output and every gradient of sum(output * g)."""
    torch.manual_seed(seed)
    ref = nn.Linear(in_features, out_features, bias=bias, dtype=torch.float64)
    x = torch.randn(*x_shape, in_features, dtype=torch.float64) * scale
    g = torch.randn(*x_shape, out_features, dtype=torch.float64)
    xr = x.clone().requires_grad_(True)
    out = ref(xr)
    (out * g).sum().backward()
    return {"state": ref.state_dict(), "x": x, "g": g, "output": out.detach(), "input.grad": xr.grad,
            "grad": {k: p.grad for k, p in ref.named_parameters()}}


def compare(student, child, in_features, out_features, x_shape, seed, scale=1.0, bias=True):
    ref = linear_case(in_features, out_features, tuple(x_shape), seed, scale, bias)
    m = public.copy_of(student, ref["state"])
    xs = child.leaf(ref["x"])
    out = m(xs)
    (out * ref["g"]).sum().backward()
    got = fetch(out, xs.grad, child.grads(m))
    assert_close(got[0], ref["output"], name="output")
    assert_close(got[1], ref["input.grad"], name="input.grad")
    assert_close(got[2], ref["grad"], name="grad")


@pytest.mark.parametrize("seed,shape", [(11, (3, 6, 2)), (12, (1, 9, 4)), (13, (5, 2, 3, 7))],
                         ids=["a", "b", "c"])
def test_hidden_shapes(student, child, seed, shape):
    """other shapes and seeds"""
    compare(student, child, shape[-2], shape[-1], shape[:-2] or (1,), seed)


def test_hidden_in_features_1(student, child):
    """in_features=1"""
    compare(student, child, 1, 4, (6,), seed=21)


def test_hidden_zero_rows(student, child):
    """an input with zero rows gives an empty output and zero gradients"""
    compare(student, child, 5, 3, (0,), seed=22)


def test_hidden_large_values(student, child):
    """large inputs (1e4) keep their relative precision"""
    compare(student, child, 8, 4, (3,), seed=23, scale=1e4)


def test_hidden_no_bias_grads(student, child):
    """bias=False: gradients of the input and weight"""
    compare(student, child, 6, 5, (2, 3), seed=24, bias=False)
