"""Public checks of hw7's MyLayerNorm against nn.LayerNorm, outputs and every gradient in float64.

Each check loads the reference's random weight and bias into the student's layer (so their use
shows), runs one input, and compares. A check grades one property: options (a tuple shape, no
affine parameters, no bias, a large eps) each have their own check, on data where only that
option matters. Two slips of the formula are graded once, by their own check, and accepted by
every other: the unbiased variance (ln_forward) and eps outside the square root (ln_eps); a detached
mean or variance is graded by ln_input_grad alone.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from kit.grader.suite import fail, fetch, reference, sibling

C = sibling(__file__, "common.py")
F64 = C.F64

pytestmark = pytest.mark.component("MyLayerNorm")

UNBIASED = ("normalised with the unbiased variance (torch.var's default): LayerNorm divides by the number of "
            "values (unbiased=False / correction=0)")
EPS_OUTSIDE = "eps added outside the square root: use sqrt(var + eps)"


@reference
def layer_norm(shape: tuple[int, ...] = (4, 6), normalized_shape: int | tuple[int, ...] = 6, seed: int = 0, *,
               eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True, loc: float = 0.0,
               scale: float = 1.0, device: str = "cpu") -> dict:
    """nn.LayerNorm(normalized_shape, ...) in float64 holding random parameters, on an input and with an
    upstream gradient drawn from `seed`: its state_dict, the output, and the gradients of sum(output * g)."""
    gen = torch.Generator().manual_seed(seed)
    ref = nn.LayerNorm(normalized_shape, eps=eps, elementwise_affine=elementwise_affine, bias=bias, dtype=F64)
    params = C.affine(ref.normalized_shape, gen)
    ref.load_state_dict({k: v for k, v in params.items() if k in ref.state_dict()})
    x = C.sample(shape, gen, loc, scale)
    g = torch.randn(shape, generator=gen, dtype=F64)
    ref.to(device)
    leaf = x.to(device).requires_grad_()
    out = ref(leaf)
    (out * g.to(device)).sum().backward()
    return {"state": ref.state_dict(), "x": x.to(device), "g": g.to(device), "output": out.detach(),
            "input.grad": leaf.grad, "grads": {k: p.grad for k, p in ref.named_parameters()}}


@reference
def initial_parameters(normalized_shape: int | tuple[int, ...]) -> dict:
    """The parameters of a new nn.LayerNorm(normalized_shape)."""
    return {k: v.detach() for k, v in nn.LayerNorm(normalized_shape).named_parameters()}


def student_copy(student, ref: dict, normalized_shape, dtype: torch.dtype = F64, **kwargs):
    """The student's layer holding the reference's state_dict, on its device, in `dtype`."""
    m = student.MyLayerNorm(normalized_shape, **kwargs)
    m = m.to(device=ref["x"].device, dtype=dtype)
    if ref["state"]:
        m.load_state_dict(ref["state"])
    return m


def formula(x: torch.Tensor, dims: tuple[int, ...], eps: float, state: dict, **slip) -> torch.Tensor:
    """Layer norm by the formula, with the parameters in `state` (if any); keywords: common.normalise's slips."""
    y = C.normalise(x, dims, eps, **slip)
    if "weight" in state:
        y = y * state["weight"]
    if "bias" in state:
        y = y + state["bias"]
    return y


def mistakes(ref: dict, dims: tuple[int, ...], eps: float = 1e-5):
    """{cause: output} of the usual slips on this reference's input (computed only when a check fails)."""
    def made() -> dict:
        x, state = ref["x"], ref["state"]
        out = {UNBIASED: formula(x, dims, eps, state, unbiased=True),
               EPS_OUTSIDE: formula(x, dims, eps, state, eps_outside=True),
               "weight and bias not applied": C.normalise(x, dims, eps),
               "normalised over the first dimension (the batch) instead of the last": formula(x, (0,), eps, state)}
        if len(dims) > 1:
            out["normalised over the last dimension only: normalise over all the dimensions of normalized_shape"] = \
                formula(x, (-1,), eps, state)
        return out
    return made


def elsewhere(ref: dict, dims: tuple[int, ...], key: str, owned: tuple[str, ...] = (), eps: float = 1e-5,
              param: str | None = None):
    """What a check that does not own them accepts: `key` ("output", "input.grad", "grads") of the formula
    with each slip of common.SLIPS other than `owned` (one parameter's gradient with `param`)."""
    def values() -> list:
        done = C.slipped(lambda t, state, **slip: formula(t, dims, eps, state, **slip), ref, owned)
        return [v[key][param] if param else v[key] for v in done]
    return values


def forward_and_grad(student, child, ref: dict, normalized_shape, **kwargs):
    """(output, input gradient) of the student's layer on the reference's input, the output fetched and
    compared first (so a wrong output never reaches the backward pass unnoticed)."""
    m = student_copy(student, ref, normalized_shape, **kwargs)
    xs = child.leaf(ref["x"])
    out = m(xs)
    return m, xs, out


# --- parameters ----------------------------------------------------------------------------------


@pytest.mark.points(1)
def test_ln_parameters(student, child):
    """weight (ones) and bias (zeros) of shape (6,) are parameters; loads nn.LayerNorm(6)'s state_dict (strict)"""
    m = student.MyLayerNorm(6)
    params = fetch(child.named_parameters(m))
    if not isinstance(params, dict) or sorted(params) != ["bias", "weight"]:
        fail(f"named_parameters() gives {sorted(params or {})}; expected 'weight' and 'bias': create them as "
             "nn.Parameter(...) so that optimisers, state_dict() and .to() see them")
    C.close(params, initial_parameters(6), "initial parameters", lambda: {
        "weight starts at ones and bias at zeros, not the other way round":
            {"weight": torch.zeros(6), "bias": torch.ones(6)}})
    state = layer_norm()["state"]
    m = student.MyLayerNorm(6).double()
    m.load_state_dict(state)
    C.close(fetch(m.state_dict()), state, "state_dict() after load_state_dict")


# --- the computation -------------------------------------------------------------------------------


@pytest.mark.points(2)
def test_ln_forward(student, child):
    """output on a (4, 6) input, normalised over the last dimension, matches nn.LayerNorm"""
    ref = layer_norm()
    m = student_copy(student, ref, 6)
    C.close_here(fetch(m(ref["x"])), ref["output"], "output", mistakes(ref, (-1,)),
                 elsewhere(ref, (-1,), "output", owned=("unbiased",)))


@pytest.mark.points(2)
def test_ln_input_grad(student, child):
    """gradient of the input, with a random upstream gradient"""
    ref = layer_norm(shape=(3, 2, 5), normalized_shape=5, seed=1)
    m, xs, out = forward_and_grad(student, child, ref, 5)
    C.tensor_like(fetch(out), ref["x"], "output")
    (out * ref["g"]).sum().backward()
    got = fetch(xs.grad)
    if got is None:
        fail("the input has no gradient after backward(): is the output computed from it with tensor operations "
             "(no .detach(), .data, .item() or numpy)?")
    C.close_here(got, ref["input.grad"], "input.grad",
                 lambda: C.detached_grads(lambda t, s, **slip: formula(t, (-1,), 1e-5, s, **slip), ref),
                 elsewhere(ref, (-1,), "input.grad", owned=C.DETACHED))


@pytest.mark.points(1)
def test_ln_param_grads(student, child):
    """weight.grad and bias.grad"""
    ref = layer_norm(shape=(3, 2, 5), normalized_shape=5, seed=1)
    m, xs, out = forward_and_grad(student, child, ref, 5)
    C.tensor_like(fetch(out), ref["x"], "output")
    (out * ref["g"]).sum().backward()
    weight, bias = fetch(m.weight.grad, m.bias.grad)
    for name, got in (("weight", weight), ("bias", bias)):
        if got is None:
            fail(f"{name}.grad is None after backward(): is {name} an nn.Parameter used in forward?")
        C.close_here(got, ref["grads"][name], f"{name}.grad", None, elsewhere(ref, (-1,), "grads", param=name))


# --- options ------------------------------------------------------------------------------------------


@pytest.mark.points(2)
def test_ln_tuple_shape(student, child):
    """normalized_shape=(3, 4) on a (2, 5, 3, 4) input: parameters of shape (3, 4), output and input gradient"""
    ref = layer_norm(shape=(2, 5, 3, 4), normalized_shape=(3, 4), seed=2)
    m = student.MyLayerNorm((3, 4))
    shapes = fetch(child.list(m.state_dict().keys()), m.weight.shape, m.bias.shape)
    if sorted(shapes[0]) != ["bias", "weight"] or tuple(shapes[1]) != (3, 4) or tuple(shapes[2]) != (3, 4):
        fail(f"MyLayerNorm((3, 4)) has state_dict keys {shapes[0]} and weight/bias shapes {tuple(shapes[1])}, "
             f"{tuple(shapes[2])}; expected weight and bias of shape (3, 4), the normalized_shape")
    m, xs, out = forward_and_grad(student, child, ref, (3, 4))
    C.close_here(fetch(out), ref["output"], "output", mistakes(ref, (-2, -1)), elsewhere(ref, (-2, -1), "output"))
    (out * ref["g"]).sum().backward()
    C.close_here(fetch(xs.grad), ref["input.grad"], "input.grad", None, elsewhere(ref, (-2, -1), "input.grad"))


@pytest.mark.points(1)
def test_ln_no_affine(student, child):
    """elementwise_affine=False: no parameters (weight and bias are None), output matches"""
    ref = layer_norm(seed=3, elementwise_affine=False)
    m = student_copy(student, ref, 6, elementwise_affine=False)
    weight, bias, params, out = fetch(m.weight, m.bias, child.named_parameters(m), m(ref["x"]))
    if weight is not None or bias is not None or params:
        fail("with elementwise_affine=False weight and bias must be None (register_parameter('weight', None)) and "
             f"the layer has no parameters; found parameters {sorted(params or {})}")
    C.close_here(out, ref["output"], "output", mistakes(ref, (-1,)), elsewhere(ref, (-1,), "output"))


@pytest.mark.points(1)
def test_ln_no_bias(student, child):
    """bias=False: a weight but no bias (None, not in state_dict()), output matches"""
    ref = layer_norm(seed=4, bias=False)
    m = student.MyLayerNorm(6, bias=False)
    bias, keys = fetch(m.bias, child.list(m.state_dict().keys()))
    if bias is not None or keys != ["weight"]:
        fail(f"with bias=False, bias must be None (register_parameter('bias', None)) and state_dict() holds only "
             f"'weight'; found keys {keys}")
    m = student_copy(student, ref, 6, bias=False)
    C.close_here(fetch(m(ref["x"])), ref["output"], "output", mistakes(ref, (-1,)), elsewhere(ref, (-1,), "output"))


@pytest.mark.points(1)
def test_ln_eps(student, child):
    """eps=0.5 on an input of small spread: the output uses sqrt(var + eps) with the constructor's eps"""
    ref = layer_norm(seed=5, eps=0.5, scale=0.3)
    m = student_copy(student, ref, 6, eps=0.5)
    state = ref["state"]
    C.close_here(fetch(m(ref["x"])), ref["output"], "output with eps=0.5", lambda: {
        "eps ignored: use the constructor's eps": formula(ref["x"], (-1,), 1e-5, state),
        EPS_OUTSIDE: formula(ref["x"], (-1,), 0.5, state, eps_outside=True)},
        elsewhere(ref, (-1,), "output", owned=("eps_outside",), eps=0.5))


# --- GPU ----------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.points(1)
def test_ln_cuda(student, child):
    """on CUDA: output, input gradient and parameter gradients match nn.LayerNorm on CUDA"""
    ref = layer_norm(shape=(3, 2, 5), normalized_shape=5, seed=1, device="cuda")
    m, xs, out = forward_and_grad(student, child, ref, 5)
    C.close_here(fetch(out), ref["output"], "output on CUDA", None, elsewhere(ref, (-1,), "output"))
    (out * ref["g"]).sum().backward()
    got_x, got_p = fetch(xs.grad, child.grads(m))
    C.close_here(got_x, ref["input.grad"], "input.grad on CUDA", None, elsewhere(ref, (-1,), "input.grad"))
    C.close_here(got_p, ref["grads"], "parameter gradients on CUDA", None, elsewhere(ref, (-1,), "grads"))
