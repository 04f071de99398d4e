"""What hw7's checks share: float64 data drawn from seeds, the normalisation formula with the
usual slips, and comparisons that look at a value's kind before computing anything from it.

Runs in the grader only (loaded with `sibling`); nothing here touches student code.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from kit.grader.suite import CheckFailed, assert_close, fail

F64 = torch.float64


def sample(shape: tuple[int, ...], gen: torch.Generator, loc: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """Random values whose mean and spread differ along every dimension, so that normalising over
    the wrong dimensions (or not at all) shows in every output."""
    x = torch.randn(shape, generator=gen, dtype=F64) * (torch.rand(shape, generator=gen, dtype=F64) + 0.5)
    for dim, size in enumerate(shape):
        along = [1] * len(shape)
        along[dim] = size
        x = x + torch.randn(along, generator=gen, dtype=F64)
    return x * scale + loc


def affine(shape: tuple[int, ...], gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A weight and a bias far from the 1 and 0 they start at, so their use shows in every output."""
    return {"weight": torch.rand(shape, generator=gen, dtype=F64) + 0.5,
            "bias": torch.randn(shape, generator=gen, dtype=F64)}


def normalise(x: torch.Tensor, dims: tuple[int, ...], eps: float, *, unbiased: bool = False,
              eps_outside: bool = False, detach: tuple[str, ...] = ()) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) over `dims`; the keywords give the usual slips (`detach`: "mean", "var")."""
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, correction=1 if unbiased else 0)
    if "mean" in detach:
        mean = mean.detach()
    if "var" in detach:
        var = var.detach()
    denom = var.sqrt() + eps if eps_outside else (var + eps).sqrt()
    return (x - mean) / denom


# Slips in the formula that one check grades (its "owner"); every other check accepts a value that shows only
# one of them, so that the slip costs its owner's points once: name -> keywords of `normalise`.
SLIPS = {"unbiased": {"unbiased": True}, "eps_outside": {"eps_outside": True}, "detach": {"detach": ("mean", "var")},
         "detach_mean": {"detach": ("mean",)}, "detach_var": {"detach": ("var",)}}
DETACHED = ("detach", "detach_mean", "detach_var")  # owned by the input-gradient checks
DETACHED_CAUSE = "the mean or the variance was detached: the gradient must flow through them too"


def detached_grads(formula: Callable[..., torch.Tensor], ref: dict) -> dict:
    """{cause: input gradient} of the formula with the mean, the variance or both detached."""
    return {f"{DETACHED_CAUSE}{suffix}": v["input.grad"]
            for suffix, v in zip(("", " (the mean)", " (the variance)"),
                                 slipped(formula, ref, owned=tuple(k for k in SLIPS if k not in DETACHED)))}


def slipped(formula: Callable[..., torch.Tensor], ref: dict, owned: tuple[str, ...] = ()) -> list[dict]:
    """For every slip not in `owned`: `formula(x, state, **slip)` on the reference's input and parameters, its
    output, and the gradients of sum(output * g) for the input and the parameters ("input.grad", "grads")."""
    out = []
    for name, slip in SLIPS.items():
        if name in owned:
            continue
        state = {k: v.clone().requires_grad_() for k, v in ref["state"].items()}
        leaf = ref["x"].clone().requires_grad_()
        y = formula(leaf, state, **slip)
        (y * ref["g"]).sum().backward()
        out.append({"output": y.detach(), "input.grad": leaf.grad, "grads": {k: v.grad for k, v in state.items()}})
    return out


def close_here(actual: Any, expected: Any, name: str, mistakes: Callable[[], dict] | None = None,
               elsewhere: Callable[[], list] | None = None) -> None:
    """close(), but a value equal to one of `elsewhere()` (values that show only a slip another check grades)
    passes here; both are computed only when `actual` differs from `expected`."""
    if matches(actual, expected):
        return
    if elsewhere is not None and any(matches(actual, value) for value in elsewhere()):
        return
    close(actual, expected, name, mistakes)


def input_grad(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The gradient of sum(fn(x) * g) with respect to x."""
    leaf = x.clone().requires_grad_()
    (fn(leaf) * g).sum().backward()
    return leaf.grad


def close(actual: Any, expected: Any, name: str, mistakes: Callable[[], dict] | None = None, **tolerances) -> None:
    """assert_close; the known mistakes (a function returning {cause: value}) are computed only on failure."""
    try:
        assert_close(actual, expected, name=name, **tolerances)
    except CheckFailed:
        assert_close(actual, expected, name=name, mistakes=mistakes() if mistakes else None, **tolerances)


def matches(actual: Any, value: torch.Tensor) -> bool:
    """True when assert_close(actual, value) would pass (same kind, shape, dtype and device; values close)."""
    try:
        assert_close(actual, value, name="")
    except CheckFailed:
        return False
    return True


def tensor_like(actual: Any, like: torch.Tensor, name: str) -> torch.Tensor:
    """`actual`, after failing the check unless it is a tensor of `like`'s shape, dtype and device."""
    if not isinstance(actual, torch.Tensor):
        fail(f"{name}: expected a tensor of shape {tuple(like.shape)} but got {type(actual).__name__}")
    for what, got, want in (("shape", tuple(actual.shape), tuple(like.shape)), ("dtype", actual.dtype, like.dtype),
                            ("device", actual.device.type, like.device.type)):
        if got != want:
            fail(f"{name}: {what} {got} but expected {want} (the input's)")
    return actual
