"""hw10 public checks of HuberLoss against F.huber_loss (nn.HuberLoss), in float64.

Per element, with d = input - target,

    loss = 0.5 * d^2                      where |d| < delta
           delta * (|d| - 0.5 * delta)    elsewhere

reduced by mean (the default) or sum. Every check compares the loss first and then its
gradients (with respect to the input, and in `huber_target_grad` the target) under a random
upstream gradient on reduction='none'.

The formula at delta=1 is the core (`huber_quadratic`, `huber_linear`); `huber_delta` is the
only public check with delta != 1, so mistakes that vanish at delta=1 (dividing by delta as
smooth L1 does, a linear branch not scaled by delta, a threshold of 1) cost that check alone.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kit.grader.suite import assert_close, fail, fetch, reference, student_raises

pytestmark = pytest.mark.component("HuberLoss")

F64 = torch.float64
SHAPE = (6, 4)


# --- data and reference ---------------------------------------------------------------------------


def data(shape: tuple[int, ...] = SHAPE, seed: int = 0, low: float = 0.0, high: float = 3.0,
         dtype: torch.dtype = F64, device: str = "cpu"):
    """(input, target, upstream gradient) with |input - target| uniform in [low, high] and random signs."""
    gen = torch.Generator().manual_seed(seed)
    target = torch.randn(shape, generator=gen, dtype=F64)
    size = torch.empty(shape, dtype=F64).uniform_(low, high, generator=gen)
    sign = torch.randint(0, 2, shape, generator=gen).to(F64) * 2 - 1
    g = torch.randn(shape, generator=gen, dtype=F64)
    return tuple(t.to(dtype=dtype, device=device) for t in (target + sign * size, target, g))


def by_hand(input: torch.Tensor, target: torch.Tensor, delta: float = 1.0, reduction: str = "mean", *,
            half: float = 0.5, offset: bool = True, scale_linear: bool = True, threshold: float | None = None,
            divide: bool = False) -> torch.Tensor:
    """The Huber loss written out, with knobs for known mistakes: `half` (the 1/2 of the quadratic branch),
    `offset` (the - delta / 2 of the linear branch), `scale_linear` (the linear branch times delta),
    `threshold` (where the branches meet, delta when None), `divide` (divided by delta: smooth L1)."""
    d = input - target
    a = d.abs()
    linear = (a - 0.5 * delta if offset else a) * (delta if scale_linear else 1.0)
    loss = torch.where(a < (delta if threshold is None else threshold), half * d * d, linear)
    if divide:
        loss = loss / delta
    return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()


def loss_and_grads(fn, input: torch.Tensor, target: torch.Tensor, g: torch.Tensor | None = None, **kwargs):
    """(loss, d loss/d input, d loss/d target) of `fn` (with an upstream gradient g for reduction='none')."""
    x, y = input.detach().clone().requires_grad_(), target.detach().clone().requires_grad_()
    out = fn(x, y, **kwargs)
    (out * g if g is not None and out.dim() else out).sum().backward()
    return out.detach(), x.grad, y.grad


@reference
def expected(shape: tuple[int, ...] = SHAPE, seed: int = 0, low: float = 0.0, high: float = 3.0,
             dtype: torch.dtype = F64, device: str = "cpu", *, upstream: bool = False, delta: float = 1.0,
             reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, d loss/d input, d loss/d target) of F.huber_loss on data(shape, seed, low, high, dtype, device),
    with its upstream gradient if `upstream`."""
    input, target, g = data(shape, seed, low, high, dtype, device)
    return loss_and_grads(F.huber_loss, input, target, g if upstream else None, delta=delta, reduction=reduction)


# --- the student's side ------------------------------------------------------------------------------


def compare(student, child, input, target, g=None, *, want, what: str, value_mistakes=None, grad_mistakes=None,
            target_grad: bool = False, **kwargs) -> None:
    """The student's loss on (input, target), compared with `want`; then the gradient w.r.t. the input
    (or, with `target_grad`, the target) of sum(loss * g)."""
    x, y = child.leaf(input), child.leaf(target)
    out = student.HuberLoss(**kwargs)(x, y)
    assert_close(fetch(out), want[0], name=f"loss, {what}", mistakes=value_mistakes)
    index, of = (2, "target") if target_grad else (1, "input")
    grads = fetch(child.suite.grads(out, [x, y], g))
    if not isinstance(grads, list):
        fail(f"the loss does not require grad, {what}: it was computed outside autograd (.detach(), .item(), "
             ".data, torch.no_grad() or NumPy); compute it from the input and the target with torch operations")
    grad = grads[index - 1]
    if grad is None:
        fail(f"{of}.grad is None after backward(), {what}: compute the loss from the input and the target with "
             "differentiable operations (no .detach(), .item() or .data)")
    assert_close(grad, want[index], name=f"gradient w.r.t. the {of}, {what}", mistakes=grad_mistakes)


def wrong(input, target, g=None, *, grads: bool = False, **kwargs) -> torch.Tensor:
    """`by_hand` with a mistake: its loss, or its gradient w.r.t. the input."""
    if grads:
        return loss_and_grads(by_hand, input, target, g, **kwargs)[1]
    return by_hand(input, target, **kwargs)


# --- the formula at delta = 1 ----------------------------------------------------------------------


def test_huber_quadratic(student, child):
    """errors below delta=1 (|d| in [0.05, 0.9]): loss 0.5 * d^2 and its gradient, per element"""
    input, target, g = data(seed=1, low=0.05, high=0.9)
    want = expected(seed=1, low=0.05, high=0.9, upstream=True, reduction="none")
    compare(student, child, input, target, g, want=want, what="|d| < delta", reduction="none", value_mistakes={
        "the 1/2 is missing: the quadratic branch is 0.5 * d^2": wrong(input, target, reduction="none", half=1.0)})


def test_huber_linear(student, child):
    """errors above delta=1 (|d| in [1.2, 4]): loss delta * (|d| - 0.5 * delta) and its gradient, per element"""
    input, target, g = data(seed=2, low=1.2, high=4.0)
    want = expected(seed=2, low=1.2, high=4.0, upstream=True, reduction="none")
    compare(student, child, input, target, g, want=want, what="|d| > delta", reduction="none", value_mistakes={
        "the - 0.5 * delta of the linear branch is missing (it makes the branches meet at |d| = delta)":
            wrong(input, target, reduction="none", offset=False),
        "no linear branch: 0.5 * d^2 everywhere (that is half the squared error)":
            wrong(input, target, reduction="none", threshold=float("inf")),
    })


@pytest.mark.points(2)
def test_huber_delta(student, child):
    """delta=0.5 and delta=2.5, errors on both sides of delta: per-element losses and gradients"""
    for delta in (0.5, 2.5):
        input, target, g = data(seed=3, high=3 * delta)
        kwargs = dict(delta=delta, reduction="none")
        mistakes = {
            "divided by delta: that is smooth L1 (beta = delta); Huber is delta times it":
                dict(divide=True),
            "the linear branch is not multiplied by delta: delta * (|d| - 0.5 * delta)": dict(scale_linear=False),
            "the branches switch at |d| = 1 instead of |d| = delta": dict(threshold=1.0),
        }
        compare(student, child, input, target, g, want=expected(seed=3, high=3 * delta, upstream=True, **kwargs),
                what=f"delta={delta}", **kwargs,
                value_mistakes={cause: wrong(input, target, **kwargs, **m) for cause, m in mistakes.items()},
                grad_mistakes={cause: wrong(input, target, g, grads=True, **kwargs, **m)
                               for cause, m in mistakes.items()})


# --- reductions, the target, shapes ---------------------------------------------------------------------


def test_huber_mean(student, child):
    """the default HuberLoss() (delta=1, reduction 'mean') averages over every element"""
    input, target, _ = data(seed=4)
    compare(student, child, input, target, want=expected(seed=4), what="HuberLoss()", value_mistakes={
        "the sum was returned: reduction='mean' averages": wrong(input, target, reduction="sum")})


def test_huber_sum(student, child):
    """reduction='sum' adds every element's loss"""
    input, target, _ = data(seed=5)
    compare(student, child, input, target, want=expected(seed=5, reduction="sum"), what="reduction='sum'",
            reduction="sum", value_mistakes={"the mean was returned": wrong(input, target, reduction="mean")})


def test_huber_target_grad(student, child):
    """the gradient w.r.t. the target (a target that requires grad) is that of nn.HuberLoss"""
    input, target, g = data(seed=6)
    want = expected(seed=6, upstream=True, reduction="none")
    compare(student, child, input, target, g, want=want, what="w.r.t. the target", reduction="none",
            target_grad=True, grad_mistakes={"the sign is flipped: d = input - target, so d loss/d target = "
                                             "-d loss/d input": want[1]})


def test_huber_shapes(student, child):
    """any shape: a 4-D input (reduction 'none' keeps its shape) and a 0-d one"""
    for shape in ((2, 3, 4, 5), ()):
        input, target, g = data(shape, seed=7)
        reduction = "none" if shape else "mean"
        compare(student, child, input, target, g if shape else None, what=f"input of shape {shape}",
                want=expected(shape, seed=7, upstream=bool(shape), reduction=reduction), reduction=reduction)


# --- bad arguments ----------------------------------------------------------------------------------------


INVALID = (({"delta": 0.0}, "delta=0"), ({"delta": -1.0}, "delta=-1"), ({"reduction": "avg"}, "reduction='avg'"))


def test_huber_invalid_arguments(student, child):
    """delta <= 0 and an unknown reduction raise ValueError"""
    input, target, _ = data()
    for kwargs, what in INVALID:
        exc = student_raises(student.HuberLoss(**kwargs)(input, target))
        if "ValueError" not in exc.types:
            fail(f"HuberLoss({what}) raised {exc.type}: {exc.message[:200]!r}; raise a ValueError that says what "
                 "is allowed")


# --- GPU ----------------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_gpu_huber(student, child):
    """on CUDA in float32: per-element losses and gradients w.r.t. the input and the target"""
    input, target, g = data(seed=8, dtype=torch.float32, device="cuda")
    want = expected(seed=8, dtype=torch.float32, device="cuda", upstream=True, reduction="none")
    for target_grad in (False, True):
        compare(student, child, input, target, g, want=want, what="on CUDA", reduction="none", target_grad=target_grad)
