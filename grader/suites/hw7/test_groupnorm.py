"""Public checks of hw7's MyGroupNorm against nn.GroupNorm, outputs and every gradient in float64.

Six channels in three groups: normalising per channel (instance norm), per sample (one group) or
with the groups interleaved (channels 0, 3 / 1, 4 / 2, 5 instead of 0, 1 / 2, 3 / 4, 5) each gives
another output, and the check names the slip. Options (other input ranks, no affine parameters,
a large eps) each have their own check. Two slips of the formula are graded once, by their own check,
and accepted by every other: the unbiased variance (gn_forward) and eps outside the square root
(gn_eps); a detached mean or variance is graded by gn_input_grad alone.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from kit.grader.suite import fail, fetch, reference, sibling, student_raises

C = sibling(__file__, "common.py")
F64 = C.F64

pytestmark = pytest.mark.component("MyGroupNorm")

SHAPE = (2, 6, 3, 4)
GROUPS = 3


@reference
def group_norm(shape: tuple[int, ...] = SHAPE, num_groups: int = GROUPS, seed: int = 0, *, eps: float = 1e-5,
               affine: bool = True, loc: float = 0.0, scale: float = 1.0, device: str = "cpu") -> dict:
    """nn.GroupNorm(num_groups, shape[1], ...) in float64 holding random parameters, on an input and with
    an upstream gradient drawn from `seed`: its state_dict, the output, and the gradients of sum(output * g)."""
    gen = torch.Generator().manual_seed(seed)
    ref = nn.GroupNorm(num_groups, shape[1], eps=eps, affine=affine, dtype=F64)
    if affine:
        ref.load_state_dict(C.affine((shape[1],), gen))
    x = C.sample(shape, gen, loc, scale)
    g = torch.randn(shape, generator=gen, dtype=F64)
    ref.to(device)
    leaf = x.to(device).requires_grad_()
    out = ref(leaf)
    (out * g.to(device)).sum().backward()
    return {"state": ref.state_dict(), "x": x.to(device), "g": g.to(device), "output": out.detach(),
            "input.grad": leaf.grad, "grads": {k: p.grad for k, p in ref.named_parameters()}}


@reference
def initial_parameters(num_groups: int, num_channels: int) -> dict:
    """The parameters of a new nn.GroupNorm(num_groups, num_channels)."""
    return {k: v.detach() for k, v in nn.GroupNorm(num_groups, num_channels).named_parameters()}


def formula(x: torch.Tensor, groups: int, eps: float, state: dict, *, interleaved: bool | str = False,
            **slip) -> torch.Tensor:
    """Group norm by the formula; `interleaved` groups channels c, c + G, c + 2G, ... (a view of
    (N, C/G, G, ...) normalised over dimension 1), the keywords of common.normalise give the other slips."""
    n, c = x.shape[:2]
    if interleaved:
        grouped = x.reshape(n, c // groups, groups, -1).transpose(1, 2)
        y = C.normalise(grouped, (2, 3), eps, **slip)
        # "scrambled": the result reshaped back without undoing the transpose, so channels change places too
        y = (y if interleaved == "scrambled" else y.transpose(1, 2)).reshape(x.shape)
    else:
        y = C.normalise(x.reshape(n, groups, -1), (2,), eps, **slip).reshape(x.shape)
    if "weight" in state:
        per_channel = (1, -1) + (1,) * (x.dim() - 2)
        y = y * state["weight"].view(per_channel) + state["bias"].view(per_channel)
    return y


def mistakes(ref: dict, groups: int = GROUPS, eps: float = 1e-5):
    """{cause: output} of the usual slips on this reference's input (computed only when a check fails)."""
    def made() -> dict:
        x, state = ref["x"], ref["state"]
        interleaved = ("the groups are interleaved: group k holds the consecutive channels k*C/G ... (k+1)*C/G - 1, "
                       "so reshape to (N, G, C/G, ...), not (N, C/G, G, ...)")
        return {
            interleaved: formula(x, groups, eps, state, interleaved=True),
            f"{interleaved}; the channels also come back in another order":
                formula(x, groups, eps, state, interleaved="scrambled"),
            "normalised every channel on its own (instance norm): normalise over the channels of a group together":
                formula(x, x.shape[1], eps, state),
            "normalised each sample as one group: use num_groups groups": formula(x, 1, eps, state),
            "normalised with the unbiased variance: GroupNorm divides by the number of values (correction=0)":
                formula(x, groups, eps, state, unbiased=True),
            "eps added outside the square root: use sqrt(var + eps)": formula(x, groups, eps, state, eps_outside=True),
            "weight and bias not applied": formula(x, groups, eps, {}),
        }
    return made


def elsewhere(ref: dict, key: str, owned: tuple[str, ...] = (), groups: int = GROUPS, eps: float = 1e-5,
              param: str | None = None):
    """What a check that does not own them accepts: `key` ("output", "input.grad", "grads") of the formula
    with each slip of common.SLIPS other than `owned` (one parameter's gradient with `param`)."""
    def values() -> list:
        done = C.slipped(lambda t, state, **slip: formula(t, groups, eps, state, **slip), ref, owned)
        return [v[key][param] if param else v[key] for v in done]
    return values


def student_copy(student, ref: dict, groups: int = GROUPS, dtype: torch.dtype = F64, **kwargs):
    """The student's layer holding the reference's state_dict, on its device, in `dtype`."""
    m = student.MyGroupNorm(groups, ref["x"].shape[1], **kwargs)
    m = m.to(device=ref["x"].device, dtype=dtype)
    if ref["state"]:
        m.load_state_dict(ref["state"])
    return m


def forward(student, child, ref: dict, **kwargs):
    """The student's layer, the input leaf and the output (proxies) on the reference's input."""
    m = student_copy(student, ref, **kwargs)
    xs = child.leaf(ref["x"])
    return m, xs, m(xs)


# --- parameters ----------------------------------------------------------------------------------


@pytest.mark.points(1)
def test_gn_parameters(student, child):
    """weight (ones) and bias (zeros) of shape (6,) are parameters; loads nn.GroupNorm(3, 6)'s state_dict (strict)"""
    m = student.MyGroupNorm(3, 6)
    params = fetch(child.named_parameters(m))
    if not isinstance(params, dict) or sorted(params) != ["bias", "weight"]:
        fail(f"named_parameters() gives {sorted(params or {})}; expected 'weight' and 'bias': create them as "
             "nn.Parameter(...) so that optimisers, state_dict() and .to() see them")
    C.close(params, initial_parameters(3, 6), "initial parameters", lambda: {
        "weight and bias have one value per group: GroupNorm's affine parameters are per channel":
            {"weight": torch.ones(3), "bias": torch.zeros(3)}})
    state = group_norm()["state"]
    m = student.MyGroupNorm(3, 6).double()
    m.load_state_dict(state)
    C.close(fetch(m.state_dict()), state, "state_dict() after load_state_dict")


@pytest.mark.points(1)
def test_gn_divisible_error(student):
    """MyGroupNorm(4, 6) raises ValueError: the channels do not split into 4 groups, like nn.GroupNorm"""
    exc = student_raises(student.MyGroupNorm(4, 6))
    if "ValueError" not in exc.types:
        fail(f"MyGroupNorm(4, 6) raised {exc.type}: {exc.message!r}; raise a ValueError (like nn.GroupNorm) that "
             "says num_channels must be divisible by num_groups (an assert disappears under python -O)")


# --- the computation -------------------------------------------------------------------------------


@pytest.mark.points(2)
def test_gn_forward(student, child):
    """output on a (2, 6, 3, 4) input with 3 groups of 2 channels matches nn.GroupNorm"""
    ref = group_norm()
    m = student_copy(student, ref)
    C.close_here(fetch(m(ref["x"])), ref["output"], "output", mistakes(ref),
                 elsewhere(ref, "output", owned=("unbiased",)))


@pytest.mark.points(2)
def test_gn_input_grad(student, child):
    """gradient of the input, with a random upstream gradient"""
    ref = group_norm(seed=1)
    m, xs, out = forward(student, child, ref)
    C.tensor_like(fetch(out), ref["x"], "output")
    (out * ref["g"]).sum().backward()
    got = fetch(xs.grad)
    if got is None:
        fail("the input has no gradient after backward(): is the output computed from it with tensor operations "
             "(no .detach(), .data, .item() or numpy)?")
    C.close_here(got, ref["input.grad"], "input.grad",
                 lambda: C.detached_grads(lambda t, s, **slip: formula(t, GROUPS, 1e-5, s, **slip), ref),
                 elsewhere(ref, "input.grad", owned=C.DETACHED))


@pytest.mark.points(1)
def test_gn_param_grads(student, child):
    """weight.grad and bias.grad"""
    ref = group_norm(seed=1)
    m, xs, out = forward(student, child, ref)
    C.tensor_like(fetch(out), ref["x"], "output")
    (out * ref["g"]).sum().backward()
    weight, bias = fetch(m.weight.grad, m.bias.grad)
    for name, got in (("weight", weight), ("bias", bias)):
        if got is None:
            fail(f"{name}.grad is None after backward(): is {name} an nn.Parameter used in forward?")
        C.close_here(got, ref["grads"][name], f"{name}.grad", None, elsewhere(ref, "grads", param=name))


# --- options ------------------------------------------------------------------------------------------


@pytest.mark.points(2)
def test_gn_input_rank(student, child):
    """inputs (N, C), (N, C, L) and (N, C, D, H, W): outputs and input gradients"""
    for shape in ((3, 6), (2, 6, 5), (2, 6, 2, 3, 2)):
        ref = group_norm(shape=shape, seed=6)
        m, xs, out = forward(student, child, ref)
        got = fetch(out)
        if isinstance(got, torch.Tensor) and tuple(got.shape) != shape:
            fail(f"an input of shape {shape} gave an output of shape {tuple(got.shape)}: view weight and bias as "
                 "(1, C) followed by one 1 per spatial dimension, not as (1, C, 1, 1)")
        C.close_here(got, ref["output"], f"output for an input of shape {shape}", mistakes(ref),
                     elsewhere(ref, "output"))
        (out * ref["g"]).sum().backward()
        C.close_here(fetch(xs.grad), ref["input.grad"], f"input.grad for an input of shape {shape}", None,
                     elsewhere(ref, "input.grad"))


@pytest.mark.points(1)
def test_gn_no_affine(student, child):
    """affine=False: no parameters (weight and bias are None), output matches"""
    ref = group_norm(seed=3, affine=False)
    m = student_copy(student, ref, affine=False)
    weight, bias, params, out = fetch(m.weight, m.bias, child.named_parameters(m), m(ref["x"]))
    if weight is not None or bias is not None or params:
        fail("with affine=False weight and bias must be None (register_parameter('weight', None)) and the layer "
             f"has no parameters; found parameters {sorted(params or {})}")
    C.close_here(out, ref["output"], "output", mistakes(ref), elsewhere(ref, "output"))


@pytest.mark.points(1)
def test_gn_eps(student, child):
    """eps=0.5 on an input of small spread: the output uses sqrt(var + eps) with the constructor's eps"""
    ref = group_norm(seed=5, eps=0.5, scale=0.3)
    m = student_copy(student, ref, eps=0.5)
    C.close_here(fetch(m(ref["x"])), ref["output"], "output with eps=0.5", lambda: {
        "eps ignored: use the constructor's eps": formula(ref["x"], GROUPS, 1e-5, ref["state"]),
        "eps added outside the square root: use sqrt(var + eps)":
            formula(ref["x"], GROUPS, 0.5, ref["state"], eps_outside=True)},
        elsewhere(ref, "output", owned=("eps_outside",), eps=0.5))


# --- GPU ----------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.points(1)
def test_gn_cuda(student, child):
    """on CUDA: output, input gradient and parameter gradients match nn.GroupNorm on CUDA"""
    ref = group_norm(seed=1, device="cuda")
    m, xs, out = forward(student, child, ref)
    C.close_here(fetch(out), ref["output"], "output on CUDA", None, elsewhere(ref, "output"))
    (out * ref["g"]).sum().backward()
    got_x, got_p = fetch(xs.grad, child.grads(m))
    C.close_here(got_x, ref["input.grad"], "input.grad on CUDA", None, elsewhere(ref, "input.grad"))
    C.close_here(got_p, ref["grads"], "parameter gradients on CUDA", None, elsewhere(ref, "grads"))
