"""Public checks of hw3: FocalLoss against a reference built on F.cross_entropy.

The reference (computed here, in the grader, in float64) is

    ce   = F.cross_entropy(logits, target, reduction="none")      # -log p_t
    loss = alpha_t * (1 - exp(-ce)) ** gamma * ce                   # 0 where target == ignore_index

reduced by sum, or by the number of non-ignored elements for 'mean' (not weighted by
alpha). Every check compares values and gradients with respect to the logits.

Each check grades one property and keeps the others out of its data: alpha only in the
alpha checks, ignored targets only in the ignore_index checks, huge logits only in
large_logits. Values are graded by the value checks, gradients by the gradient checks
(ce_grad, gamma_grad, ignore_index_grad): the alpha, reduction and spatial checks compare
values only. Where a check compares a gradient whose subject is not the focal term, a
gradient that shows only a detached focal factor (graded by gamma_grad) is accepted. So one
mistake costs its own points once.
"""
from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from kit.grader.suite import OnDevice, assert_close, fail, fetch, reference, student_raises

pytestmark = pytest.mark.component("FocalLoss")

F64 = torch.float64
N, C = 8, 5
ALPHA = [0.25, 0.5, 0.75, 1.0, 0.125]  # per class; exact in float32 too, so storing them in float32 is fine


# --- data and reference ---------------------------------------------------------------------------


def data(shape: tuple[int, ...] = (N, C), seed: int = 0, scale: float = 2.0, ignore: float = 0.0,
         ignore_index: int = -100, dtype: torch.dtype = F64):
    """logits of `shape`, int64 targets for them (a fraction `ignore` set to ignore_index), upstream grads."""
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape, generator=gen, dtype=F64) * scale).to(dtype)
    target_shape = (shape[0], *shape[2:])
    target = torch.randint(0, shape[1], target_shape, generator=gen)
    if ignore:
        mask = torch.rand(target_shape, generator=gen) < ignore
        mask.view(-1)[0], mask.view(-1)[1] = True, False  # at least one ignored and one kept
        target = target.masked_fill(mask, ignore_index)
    g = torch.randn(target_shape, generator=gen, dtype=F64).to(dtype)
    return logits, target, g


def focal(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: Any = None,
          reduction: str = "mean", ignore_index: int = -100, *, binary_alpha: bool = False,
          pt_power: bool = False, detach_focal: bool = False, mean_by_alpha: bool = False,
          mean_over_all: bool = False) -> torch.Tensor:
    """The reference focal loss on F.cross_entropy; the keyword-only flags give known wrong variants."""
    valid = target != ignore_index
    safe = target.where(valid, torch.zeros_like(target))
    ce = F.cross_entropy(logits, safe, reduction="none")  # -log p_t
    one_minus_pt = -torch.expm1(-ce)
    factor = (1 - one_minus_pt) if pt_power else one_minus_pt
    factor = factor ** gamma
    loss = (factor.detach() if detach_focal else factor) * ce
    alpha_t = None
    if isinstance(alpha, (int, float)):
        alpha_t = torch.where(safe == 1, alpha, 1 - alpha).to(logits.dtype) if binary_alpha else \
            torch.full_like(loss, float(alpha))
    elif alpha is not None:
        alpha_t = torch.as_tensor(alpha, dtype=F64).to(device=logits.device, dtype=logits.dtype)[safe]
    if alpha_t is not None:
        loss = alpha_t * loss
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if mean_by_alpha and alpha_t is not None:
        return loss.sum() / torch.where(valid, alpha_t, torch.zeros_like(alpha_t)).sum()
    if mean_over_all:
        return loss.sum() / loss.numel()
    return loss.sum() / valid.sum()


def focal_and_grad(logits: torch.Tensor, target: torch.Tensor, g: torch.Tensor | None = None, **kwargs):
    """(loss, d loss/d logits) of `focal` (with an upstream gradient g for reduction='none')."""
    leaf = logits.detach().clone().requires_grad_()
    out = focal(leaf, target, **kwargs)
    (out * g if g is not None and out.dim() else out).sum().backward()
    return out.detach(), leaf.grad


@reference
def expected(shape: tuple[int, ...] = (N, C), seed: int = 0, scale: float = 2.0, ignore: float = 0.0,
             ignore_index: int = -100, dtype: torch.dtype = F64, *, upstream: bool = False, **loss: Any):
    """(loss, d loss/d logits) of the reference in float64 on data(shape, seed, scale, ignore, ignore_index,
    dtype), with its upstream gradient if `upstream`; `loss` holds FocalLoss's settings (alpha as a tuple)."""
    logits, target, g = data(shape, seed, scale, ignore, ignore_index, dtype)
    return focal_and_grad(logits.double(), target, g.double() if upstream else None, ignore_index=ignore_index,
                          **loss)


@reference
def cross_entropy(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """F.cross_entropy (reduction 'mean') on data(seed=seed), and its gradient w.r.t. the logits."""
    logits, target, _ = data(seed=seed)
    leaf = logits.clone().requires_grad_()
    F.cross_entropy(leaf, target).backward()
    return F.cross_entropy(logits, target), leaf.grad


def on_student(student, child, logits: torch.Tensor, target: torch.Tensor, g: torch.Tensor | None = None,
               **kwargs):
    """The student's loss and its gradient, as proxies (nothing runs until fetch)."""
    loss_fn = student.FocalLoss(**kwargs)
    leaf = child.leaf(logits)
    out = loss_fn(leaf, target)
    (out if g is None else out * g).sum().backward()
    return out, leaf.grad


def compare(student, child, logits, target, g=None, *, want: tuple, what: str, value_mistakes: dict | None = None,
            grad_mistakes: dict | None = None, values: bool = True, grads: bool = True, focal_grad: bool = False,
            **kwargs) -> None:
    """Run the student's loss once and compare its value and/or gradient with `want`, the reference's.

    Unless the focal term's gradient is the subject (`focal_grad`), a gradient equal to that of the
    loss with a detached focal factor passes: gamma_grad grades that mistake.
    """
    ref_out, ref_grad = want
    out, grad = on_student(student, child, logits, target, g, **kwargs)
    out, grad = fetch(out, grad, finite=False)
    if values:
        assert_close(out, ref_out, name=f"loss, {what}", mistakes=value_mistakes)
    if grads:
        if grad is None:
            fail(f"logits.grad is None after backward(), {what}: the loss must be computed from the logits "
                 "with differentiable operations")
        if not focal_grad and matches(grad, focal_and_grad(logits.double(), target, None if g is None else g.double(),
                                                           detach_focal=True, **kwargs)[1]):
            return
        assert_close(grad, ref_grad, name=f"gradient w.r.t. the logits, {what}", mistakes=grad_mistakes)


def matches(actual: Any, value: torch.Tensor) -> bool:
    """True when `actual` is a floating tensor equal to `value` (float64) within float32's tolerance."""
    if not isinstance(actual, torch.Tensor) or actual.shape != value.shape or not actual.is_floating_point():
        return False
    return torch.allclose(actual.detach().cpu().double(), value.cpu(), rtol=1.3e-6, atol=1e-7)


# known wrong focal terms, as flags of `focal`
FOCAL_MISTAKES = {
    "(p_t)^gamma used instead of (1 - p_t)^gamma": dict(pt_power=True),
    "gamma ignored: the result is plain cross-entropy": dict(gamma=0.0),
}


# --- gamma = 0 is cross-entropy --------------------------------------------------------------------


@pytest.mark.points(1)
def test_ce_value(student, child):
    """gamma=0, alpha=None: the loss equals F.cross_entropy (reduction 'mean')"""
    logits, target, _ = data()
    out = fetch(student.FocalLoss(gamma=0.0)(logits, target))
    assert_close(out, cross_entropy(seed=0)[0], name="loss with gamma=0", mistakes={
        "the sum was returned: reduction='mean' averages": F.cross_entropy(logits, target, reduction="sum"),
        "the sign is flipped: the loss is -log p_t": -F.cross_entropy(logits, target),
    })


@pytest.mark.points(1)
def test_ce_grad(student, child):
    """gamma=0, alpha=None: the gradient w.r.t. the logits equals that of F.cross_entropy"""
    logits, target, _ = data(seed=1)
    _, grad = on_student(student, child, logits, target, gamma=0.0)
    grad = fetch(grad)
    if grad is None:
        fail("logits.grad is None after backward(): compute the loss from the logits with differentiable operations")
    assert_close(grad, cross_entropy(seed=1)[1], name="gradient with gamma=0")


# --- the focal term --------------------------------------------------------------------------------------


@pytest.mark.points(2)
def test_gamma_value(student, child):
    """gamma in {1, 2, 5}: per-element losses (reduction='none') match -(1 - p_t)^gamma log p_t"""
    for gamma in (1.0, 2.0, 5.0):
        logits, target, g = data(seed=2)
        mistakes = {cause: focal(logits, target, **{"gamma": gamma, "reduction": "none", **flags})
                    for cause, flags in FOCAL_MISTAKES.items()}
        compare(student, child, logits, target, g, want=expected(seed=2, upstream=True, gamma=gamma, reduction="none"),
                what=f"gamma={gamma:g}", value_mistakes=mistakes, grads=False, gamma=gamma, reduction="none")


@pytest.mark.points(2)
def test_gamma_grad(student, child):
    """gamma in {1, 2, 5}: gradients w.r.t. the logits (random upstream gradient on reduction='none')"""
    for gamma in (1.0, 2.0, 5.0):
        logits, target, g = data(seed=3)
        mistakes = {"the focal term (1 - p_t)^gamma was detached: the gradient must flow through it too":
                    focal_and_grad(logits, target, g, gamma=gamma, reduction="none", detach_focal=True)[1]}
        compare(student, child, logits, target, g, want=expected(seed=3, upstream=True, gamma=gamma, reduction="none"),
                what=f"gamma={gamma:g}", grad_mistakes=mistakes, values=False, focal_grad=True, gamma=gamma,
                reduction="none")


# --- alpha -----------------------------------------------------------------------------------------------


@pytest.mark.points(1)
def test_alpha_float(student, child):
    """alpha=0.25 (a float) multiplies every element's loss by 0.25"""
    logits, target, g = data(seed=4)
    kwargs = dict(gamma=2.0, alpha=0.25, reduction="none")
    compare(student, child, logits, target, g, want=expected(seed=4, upstream=True, **kwargs), what="alpha=0.25",
            value_mistakes={
        "alpha applied as in binary focal loss (alpha for class 1, 1 - alpha for the others): a float alpha "
        "is a constant factor for every class": focal(logits, target, **kwargs, binary_alpha=True),
        "alpha ignored": focal(logits, target, gamma=2.0, reduction="none"),
        "1 - alpha used instead of alpha": focal(logits, target, gamma=2.0, alpha=0.75, reduction="none"),
    }, grads=False, **kwargs)


@pytest.mark.points(2)
def test_alpha_per_class(student, child):
    """alpha as a list and as a tensor of C weights: alpha_t = alpha[target]; 'mean' still divides by the count"""
    logits, target, g = data(seed=5)
    for alpha, kind in ((list(ALPHA), "a list"), (torch.tensor(ALPHA), "a tensor")):
        want = expected(seed=5, upstream=True, gamma=2.0, alpha=tuple(ALPHA), reduction="none")
        compare(student, child, logits, target, g, want=want, what=f"alpha given as {kind}", value_mistakes={
            "alpha ignored": focal(logits, target, gamma=2.0, reduction="none"),
        }, grads=False, gamma=2.0, alpha=alpha, reduction="none")
    compare(student, child, logits, target, want=expected(seed=5, gamma=2.0, alpha=tuple(ALPHA)),
            what="alpha given as a list, reduction='mean'", value_mistakes={
        "divided by the sum of alpha_t (as F.cross_entropy does with weight=): FocalLoss divides by the "
        "number of non-ignored elements": focal(logits, target, gamma=2.0, alpha=ALPHA, mean_by_alpha=True),
    }, grads=False, gamma=2.0, alpha=list(ALPHA))


# --- reductions --------------------------------------------------------------------------------------------


@pytest.mark.points(1)
def test_reduction_none(student, child):
    """reduction='none' returns one loss per sample, shape (N,)"""
    logits, target, g = data(seed=6)
    compare(student, child, logits, target, g, want=expected(seed=6, upstream=True, gamma=2.0, reduction="none"),
            what="reduction='none'", grads=False, gamma=2.0, reduction="none")


@pytest.mark.points(1)
def test_reduction_sum(student, child):
    """reduction='sum' returns the sum of the per-sample losses"""
    logits, target, _ = data(seed=7)
    kwargs = dict(gamma=2.0)
    compare(student, child, logits, target, want=expected(seed=7, gamma=2.0, reduction="sum"),
            what="reduction='sum'", value_mistakes={
        "the mean was returned": focal(logits, target, **kwargs, reduction="mean"),
    }, grads=False, **kwargs, reduction="sum")


@pytest.mark.points(1)
def test_reduction_mean(student, child):
    """reduction='mean' (the default) divides the sum by the number of elements"""
    logits, target, _ = data(seed=8)
    kwargs = dict(gamma=2.0)
    compare(student, child, logits, target, want=expected(seed=8, gamma=2.0),
            what="reduction='mean'", value_mistakes={
        "the sum was returned": focal(logits, target, **kwargs, reduction="sum"),
    }, grads=False, **kwargs)


# --- ignore_index -------------------------------------------------------------------------------------------


IGNORE_CASES = ((-100, "the default ignore_index=-100"), (7, "ignore_index=7"))
IGNORE_HINT = ("targets equal to ignore_index are not class indices: replace them by any valid class before "
               "gather/indexing (alpha too), then set their loss to exactly 0")


def explain_ignored(check):
    """Run `check`; an index error from the student's code gets the likely cause added."""
    try:
        check()
    except AssertionError as exc:
        if "out of bounds" in str(exc) or "out of range" in str(exc):
            raise type(exc)(f"{exc}\n  likely cause: {IGNORE_HINT}") from None
        raise


def _ignored_values(student, ignore_index: int, what: str) -> None:
    """Losses with reduction none/sum/mean when 40% of the targets are ignore_index."""
    logits, target, _ = data(seed=9, ignore=0.4, ignore_index=ignore_index)
    kwargs = dict(gamma=2.0, ignore_index=ignore_index)
    got = fetch(*(student.FocalLoss(**kwargs, reduction=r)(logits, target) for r in ("none", "sum", "mean")))
    want = [expected(seed=9, ignore=0.4, reduction=r, **kwargs)[0] for r in ("none", "sum", "mean")]
    assert_close(got[0], want[0], name=f"loss with reduction='none', {what}")
    assert_close(got[1], want[1], name=f"loss with reduction='sum', {what}")
    assert_close(got[2], want[2], name=f"loss with reduction='mean', {what}", mistakes={
        "'mean' divided by all elements, ignored ones included: divide by the number of non-ignored ones":
            focal(logits, target, **kwargs, mean_over_all=True),
    })


@pytest.mark.points(2)
def test_ignore_index_value(student, child):
    """ignored targets (-100, and a custom ignore_index) give loss 0; 'mean' averages over the rest"""
    for ignore_index, what in IGNORE_CASES:
        explain_ignored(lambda: _ignored_values(student, ignore_index, what))  # noqa: B023 - called at once


@pytest.mark.points(1)
def test_ignore_index_grad(student, child):
    """ignored targets get exactly zero gradient; the others get that of the non-ignored loss"""
    for ignore_index, what in IGNORE_CASES:
        logits, target, _ = data(seed=10, ignore=0.4, ignore_index=ignore_index)
        want = expected(seed=10, ignore=0.4, ignore_index=ignore_index, gamma=2.0)
        def check(logits=logits, target=target, want=want, what=what, ignore_index=ignore_index):
            compare(student, child, logits, target, want=want, values=False, what=f"reduction='mean', {what}",
                    gamma=2.0, ignore_index=ignore_index)

        explain_ignored(check)


# --- shapes and numerics ------------------------------------------------------------------------------------------


@pytest.mark.points(2)
def test_spatial(student, child):
    """logits (N, C, d1, d2) with targets (N, d1, d2): per-position losses of shape (N, d1, d2)"""
    logits, target, g = data(shape=(2, C, 3, 4), seed=11)
    want = expected(shape=(2, C, 3, 4), seed=11, upstream=True, gamma=2.0, reduction="none")
    compare(student, child, logits, target, g, want=want, what="logits (2, 5, 3, 4)", grads=False, gamma=2.0,
            reduction="none")


@reference
def large_logits() -> dict:
    """float32 logits of magnitude 100, targets, and the reference's per-element loss and gradient in float64."""
    gen = torch.Generator().manual_seed(12)
    logits = ((torch.rand(N, C, generator=gen, dtype=F64) * 2 - 1) * 100).float()
    logits[:, 0], logits[:, 1] = 100.0, -100.0  # p = 1 for class 0, p = e^-200 for class 1: underflows in softmax
    target = torch.tensor([1, 0, 1, 2, 3, 4, 1, 0])
    ref_out, ref_grad = focal_and_grad(logits.double(), target, gamma=2.0, reduction="none")
    return {"logits": logits, "target": target, "loss": ref_out, "grad": ref_grad}


@pytest.mark.points(2)
def test_large_logits(student, child):
    """float32 logits of magnitude 100: finite loss and gradients that match (use log_softmax, not log(softmax))"""
    case = large_logits()
    logits, target, ref_out, ref_grad = case["logits"], case["target"], case["loss"], case["grad"]
    out, grad = on_student(student, child, logits, target, gamma=2.0, reduction="sum")
    per_element = student.FocalLoss(gamma=2.0, reduction="none")(logits, target)
    total, grad, values = fetch(out, grad, per_element, finite=False)
    for name, got in (("loss", values), ("gradient", grad)):
        if isinstance(got, torch.Tensor) and got.is_floating_point() and not torch.isfinite(got).all():
            fail(f"the {name} has inf or NaN entries for logits of magnitude 100 (rows "
                 f"{sorted(set(torch.nonzero(~torch.isfinite(got))[:, 0].tolist()))}): log(softmax(x)) underflows "
                 "to log(0); compute log p_t with log_softmax (or logits - logsumexp) and p_t = exp(log p_t)")
    assert_close(values, ref_out.float(), name="per-element loss for logits of magnitude 100 (float32)")
    assert_close(total, ref_out.sum().float(), name="summed loss for logits of magnitude 100 (float32)")
    assert_close(grad, ref_grad.float(), name="gradient for logits of magnitude 100 (float32)")


# --- input errors --------------------------------------------------------------------------------------------------


def _clear_error(student, logits, target, problem: str, hint: str) -> None:
    exc = student_raises(student.FocalLoss()(logits, target))
    if not {"TypeError", "ValueError"} & set(exc.types):
        fail(f"{problem} raised {exc.type}: {exc.message[:200]!r}. Check the target first and raise "
             f"{hint} that says what was expected.")


@pytest.mark.points(1)
def test_target_dtype_error(student):
    """a float target raises TypeError (or ValueError): targets are int64 class indices"""
    logits, target, _ = data()
    _clear_error(student, logits, target.float(), "a float32 target", "a TypeError")


@pytest.mark.points(1)
def test_target_shape_error(student):
    """a target whose shape does not match the logits raises ValueError (or TypeError)"""
    logits, target, _ = data()
    _clear_error(student, logits, torch.cat([target, target[:1]]), "a target of shape (9,) for logits (8, 5)",
                 "a ValueError")
    _clear_error(student, logits, target[:, None], "a target of shape (8, 1) for logits (8, 5)", "a ValueError")
    spatial, spatial_target, _ = data(shape=(2, C, 3, 4))
    _clear_error(student, spatial, spatial_target.transpose(1, 2), "a target of shape (2, 4, 3) for logits "
                 "(2, 5, 3, 4)", "a ValueError")


# --- GPU ----------------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.points(1)
def test_gpu_alpha_list(student, child):
    """on CUDA with alpha given as a Python list: loss and gradient on the GPU match"""
    logits, target, _ = data(seed=13, dtype=torch.float32)
    ref_out, ref_grad = expected(seed=13, dtype=torch.float32, gamma=2.0, alpha=tuple(ALPHA))
    out, grad = on_student(student, child, logits.cuda(), target.cuda(), gamma=2.0, alpha=list(ALPHA))
    out, grad = fetch(out, grad)
    assert_close(out, ref_out.float().cuda(), name="loss on CUDA, alpha as a list")
    assert_close(grad, ref_grad.float().cuda(), name="gradient on CUDA, alpha as a list")


@pytest.mark.gpu
@pytest.mark.points(1)
def test_gpu_alpha_cpu_tensor(student, child):
    """on CUDA with alpha given as a CPU tensor: alpha must follow the logits to the GPU"""
    logits, target, _ = data(seed=14, dtype=torch.float32)
    ref_out, ref_grad = expected(seed=14, dtype=torch.float32, gamma=2.0, alpha=tuple(ALPHA))
    out, grad = on_student(student, child, logits.cuda(), target.cuda(), gamma=2.0, alpha=torch.tensor(ALPHA))
    out, grad = fetch(out, grad)
    assert_close(out, ref_out.float().cuda(), name="loss on CUDA, alpha as a CPU tensor")
    assert_close(grad, ref_grad.float().cuda(), name="gradient on CUDA, alpha as a CPU tensor")


# --- on the GPU, or an emulated one -------------------------------------------------------------------------------


@pytest.mark.points(1)
def test_device_placement(student, child):
    """on the GPU (emulated without one): the loss and the logits' gradient stay there, alpha given as a list"""
    dev = OnDevice(child)
    for kwargs in ({"alpha": list(ALPHA)}, {"alpha": 0.25, "reduction": "none"}, {"reduction": "sum"}):
        loss_fn = student.FocalLoss(gamma=2.0, **kwargs)
        if "alpha" in kwargs and not dev.accepts(loss_fn):
            continue  # an alpha it does not support costs the alpha checks only
        loss_fn = loss_fn.to(dev.name)
        logits = dev.randn(N, C, 3, requires_grad=True)
        loss = loss_fn(logits, dev.randint(C, N, 3))
        loss.backward(dev.randn(N, 3) if kwargs.get("reduction") == "none" else dev.randn())
        setting = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        dev.expect(f"the loss and its backward ({setting})", loss=loss, **{"logits.grad": logits.grad})
