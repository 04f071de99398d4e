"""hw10 public checks of LabelSmoothingCrossEntropy against F.cross_entropy(label_smoothing=...), in float64.

The reference (computed here, in the grader) is F.cross_entropy itself: per element

    loss = (1 - s) * (-log p_target) + s * mean over the classes of (-log p_c)

0 where the target is ignore_index, reduced by sum, or by the number of non-ignored
elements for 'mean'. Every check compares the loss first and then its gradient with respect
to the logits (a random upstream gradient on reduction='none').

Cross-entropy (smoothing=0) is the core, and `smoothing` is the check of the smoothed target.
Each other check grades one feature (a reduction, ignore_index, spatial inputs, large logits)
twice: with smoothing=0 against F.cross_entropy (anchored), and with smoothing=0.2 against the
student's own per-element loss on (N, C) logits (relative), so a wrong smoothed target costs
the `smoothing` check alone, not every feature on top of it.
"""
from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from kit.grader.suite import assert_close, fail, fetch, reference, student_raises

pytestmark = pytest.mark.component("LabelSmoothingCrossEntropy")

F64 = torch.float64
N, C = 8, 5
SMOOTH = 0.2  # the smoothing of the relative halves of the feature checks


# --- data and reference ---------------------------------------------------------------------------


def data(shape: tuple[int, ...] = (N, C), seed: int = 0, scale: float = 2.0, ignore: float = 0.0,
         ignore_index: int = -100, dtype: torch.dtype = F64, device: str = "cpu"):
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
    return logits.to(device), target.to(device), g.to(device)


def torch_loss(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.1, reduction: str = "mean",
               ignore_index: int = -100) -> torch.Tensor:
    """F.cross_entropy with LabelSmoothingCrossEntropy's arguments."""
    return F.cross_entropy(logits, target, label_smoothing=smoothing, reduction=reduction,
                           ignore_index=ignore_index)


def by_hand(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.1, reduction: str = "mean",
            ignore_index: int = -100, *, other_classes: bool = False, no_target_share: bool = False,
            mean_over_all: bool = False) -> torch.Tensor:
    """Known wrong variants of the loss (the flags), for naming a likely cause:

    other_classes: 1 - s on the target and s / (C - 1) on every other class (the smoothed target of
    some papers); no_target_share: 1 - s on the target and s / C on every other class only;
    mean_over_all: 'mean' divides by every element, ignored ones included.
    """
    classes = logits.shape[1]
    valid = target != ignore_index
    safe = target.where(valid, torch.zeros_like(target))
    log_p = logits.log_softmax(1)
    nll = -log_p.gather(1, safe.unsqueeze(1)).squeeze(1)
    everything = -log_p.sum(1)
    if other_classes:
        loss = (1 - smoothing) * nll + smoothing / (classes - 1) * (everything - nll)
    elif no_target_share:
        loss = (1 - smoothing) * nll + smoothing / classes * (everything - nll)
    else:
        loss = (1 - smoothing) * nll + smoothing / classes * everything
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    if reduction == "none":
        return loss
    if reduction == "sum" or mean_over_all:
        return loss.sum() / (loss.numel() if reduction == "mean" else 1)
    return loss.sum() / valid.sum()


def loss_and_grad(fn, logits: torch.Tensor, target: torch.Tensor, g: torch.Tensor | None = None, **kwargs):
    """(loss, d loss/d logits) of `fn` (with an upstream gradient g for reduction='none')."""
    leaf = logits.detach().clone().requires_grad_()
    out = fn(leaf, target, **kwargs)
    (out * g if g is not None and out.dim() else out).sum().backward()
    return out.detach(), leaf.grad


@reference
def expected(shape: tuple[int, ...] = (N, C), seed: int = 0, scale: float = 2.0, ignore: float = 0.0,
             ignore_index: int = -100, dtype: torch.dtype = F64, device: str = "cpu", *, upstream: bool = False,
             **loss: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, d loss/d logits) of F.cross_entropy in float64 on data(shape, seed, scale, ignore, ignore_index,
    dtype, device), with its upstream gradient if `upstream`; `loss` holds the settings (smoothing, reduction)."""
    logits, target, g = data(shape, seed, scale, ignore, ignore_index, dtype, device)
    return loss_and_grad(torch_loss, logits.double(), target, g.double() if upstream else None,
                         ignore_index=ignore_index, **loss)


# --- the student's side ------------------------------------------------------------------------------


class Run:
    """One call of the student's loss on a leaf copy of the logits (proxies: nothing runs until fetched)."""

    def __init__(self, student, child, logits: torch.Tensor, target: torch.Tensor, **kwargs) -> None:
        self.leaf = child.leaf(logits)
        self.out = student.LabelSmoothingCrossEntropy(**kwargs)(self.leaf, target)

    def backward(self, child, g: torch.Tensor | None = None):
        """Record backward of sum(loss * g) (or of the loss): [the logits' gradient], or DETACHED (a proxy)."""
        return child.suite.grads(self.out, [self.leaf], g)


def outputs(child, runs: list[Run], finite: bool = True) -> list:
    """Every run's loss, in one round trip (`finite=False` where a NaN is the right answer)."""
    return fetch(child.list([run.out for run in runs]), finite=finite)


def gradients(child, runs: list[Run], upstream: list, what: list[str], finite: bool = True) -> list[torch.Tensor]:
    """Every run's gradient w.r.t. the logits (after its loss was compared), in one round trip
    (`finite=False` where the check judges NaN and inf itself)."""
    grads = fetch(child.list([run.backward(child, g) for run, g in zip(runs, upstream)]), finite=finite)
    for grad, name in zip(grads, what):
        if not isinstance(grad, list):
            fail(f"the loss does not require grad, {name}: it was computed outside autograd (.detach(), .item(), "
                 ".data, torch.no_grad() or NumPy); compute it from the logits with torch operations")
        if grad[0] is None:
            fail(f"logits.grad is None after backward(), {name}: compute the loss from the logits with "
                 "differentiable operations")
    return [grad[0] for grad in grads]


def tensor_like(value: Any, shape: tuple[int, ...], dtype: torch.dtype, name: str) -> torch.Tensor:
    """`value` if it is a tensor of `shape` and `dtype`; checked before the grader computes anything from it."""
    if not isinstance(value, torch.Tensor):
        fail(f"{name}: expected a tensor of shape {shape} but got {type(value).__name__}")
    if tuple(value.shape) != shape or value.dtype != dtype:
        fail(f"{name}: expected shape {shape} and dtype {dtype} but got shape {tuple(value.shape)} and "
             f"dtype {value.dtype}")
    return value


# --- cross-entropy and the smoothed target -----------------------------------------------------------


@pytest.mark.points(2)
def test_cross_entropy(student, child):
    """smoothing=0: per-element losses (reduction='none') and gradients equal F.cross_entropy's"""
    logits, target, g = data(seed=1)
    run = Run(student, child, logits, target, smoothing=0.0, reduction="none")
    want = expected(seed=1, upstream=True, smoothing=0.0, reduction="none")
    [out] = outputs(child, [run])
    assert_close(out, want[0], name="loss with smoothing=0, reduction='none'", mistakes={
        "the sign is flipped: the loss is -log p_target": -want[0]})
    [grad] = gradients(child, [run], [g], ["smoothing=0"])
    assert_close(grad, want[1], name="gradient w.r.t. the logits, smoothing=0")


@pytest.mark.points(2)
def test_smoothing(student, child):
    """the default smoothing (0.1) and smoothing=0.3: per-element losses and gradients equal F.cross_entropy's"""
    logits, target, g = data(seed=2)
    settings = (({}, 0.1, "the default smoothing"), ({"smoothing": 0.3}, 0.3, "smoothing=0.3"))
    runs = [Run(student, child, logits, target, reduction="none", **kwargs) for kwargs, _, _ in settings]
    wants = [expected(seed=2, upstream=True, smoothing=s, reduction="none") for _, s, _ in settings]

    def variants(s, grads=False):
        pick = (lambda f, **k: loss_and_grad(f, logits, target, g, **k)[1]) if grads else \
            (lambda f, **k: f(logits, target, **k))
        return {
            f"1 - {s} on the target and {s} / (C - 1) on the other classes: the smoothed target puts {s} / C on "
            f"every class, the target included (1 - {s} + {s} / C there)":
                pick(by_hand, smoothing=s, reduction="none", other_classes=True),
            f"{s} / C missing on the target class: it gets 1 - {s} + {s} / C":
                pick(by_hand, smoothing=s, reduction="none", no_target_share=True),
            "smoothing ignored (plain cross-entropy)": pick(torch_loss, smoothing=0.0, reduction="none"),
        }

    got = outputs(child, runs)
    for out, want, (_, s, what) in zip(got, wants, settings):
        assert_close(out, want[0], name=f"loss, {what}", mistakes=variants(s))
    grads = gradients(child, runs, [g, g], [what for _, _, what in settings])
    for grad, want, (_, s, what) in zip(grads, wants, settings):
        assert_close(grad, want[1], name=f"gradient w.r.t. the logits, {what}", mistakes=variants(s, grads=True))


# --- reductions ---------------------------------------------------------------------------------------


def _reduction(student, child, reduction: str, seed: int, value_mistakes) -> None:
    """`reduction` (None: the default) with smoothing=0 against F.cross_entropy, and with smoothing=0.2
    against the student's own reduction='none'."""
    logits, target, _ = data(seed=seed)
    kwargs = {} if reduction is None else {"reduction": reduction}
    name = "the default reduction" if reduction is None else f"reduction={reduction!r}"
    anchored = Run(student, child, logits, target, smoothing=0.0, **kwargs)
    smooth = Run(student, child, logits, target, smoothing=SMOOTH, **kwargs)
    per_element = Run(student, child, logits, target, smoothing=SMOOTH, reduction="none")
    want = expected(seed=seed, smoothing=0.0, reduction=reduction or "mean")
    got, got_smooth, got_none = outputs(child, [anchored, smooth, per_element])
    assert_close(got, want[0], name=f"loss with smoothing=0, {name}", mistakes=value_mistakes(logits, target))
    got_none = tensor_like(got_none, (N,), F64, f"loss with smoothing={SMOOTH}, reduction='none'")
    total = got_none.sum()
    assert_close(got_smooth, total if reduction == "sum" else total / N,
                 name=f"loss with smoothing={SMOOTH}, {name} (against your reduction='none')",
                 mistakes={"the sum was returned": total, "the mean was returned": total / N})
    weight = torch.full((N,), 1.0 if reduction == "sum" else 1.0 / N, dtype=F64)
    grads = gradients(child, [anchored, smooth, per_element], [None, None, weight],
                      ["smoothing=0", f"smoothing={SMOOTH}", f"smoothing={SMOOTH}, reduction='none'"])
    assert_close(grads[0], want[1], name=f"gradient w.r.t. the logits, smoothing=0, {name}")
    assert_close(grads[1], grads[2], name=f"gradient w.r.t. the logits, smoothing={SMOOTH}, {name} (against your "
                 f"reduction='none')")


def test_reduction_mean(student, child):
    """the default reduction 'mean' averages over the elements"""
    _reduction(student, child, None, 3, lambda logits, target: {
        "the sum was returned: reduction='mean' averages": torch_loss(logits, target, 0.0, "sum"),
        "divided by N * C: the mean is over the N elements, each already summed over the classes":
            torch_loss(logits, target, 0.0) / C,
    })


def test_reduction_sum(student, child):
    """reduction='sum' adds the elements' losses"""
    _reduction(student, child, "sum", 4, lambda logits, target: {
        "the mean was returned": torch_loss(logits, target, 0.0, "mean")})


# --- ignore_index ---------------------------------------------------------------------------------------


IGNORE_CASES = ((-100, "the default ignore_index=-100"), (7, "ignore_index=7"))
IGNORE_HINT = ("targets equal to ignore_index are not class indices: replace them by any valid class before "
               "gather/indexing, then set their loss to exactly 0")


def explain_ignored(check) -> None:
    """Run `check`; an index error from the student's code gets the likely cause added."""
    try:
        check()
    except AssertionError as exc:
        if "out of bounds" in str(exc) or "out of range" in str(exc):
            raise type(exc)(f"{exc}\n  likely cause: {IGNORE_HINT}") from None
        raise


def ignored_targets(student, child, seed: int, ignore_index: int, what: str, shape=(N, C)) -> None:
    """40% of the targets ignored: every reduction and the gradient of 'mean' with smoothing=0 against
    F.cross_entropy, and with smoothing=0.2 against the student's own loss on the kept elements."""
    logits, target, _ = data(shape, seed=seed, ignore=0.4, ignore_index=ignore_index)
    valid = target != ignore_index
    kept = valid.sum()
    safe = target.where(valid, torch.zeros_like(target))  # the same elements with nothing ignored
    kwargs = dict(ignore_index=ignore_index)
    reductions = ("none", "sum", "mean")
    anchored = [Run(student, child, logits, target, smoothing=0.0, reduction=r, **kwargs) for r in reductions]
    smooth = [Run(student, child, logits, target, smoothing=SMOOTH, reduction=r, **kwargs) for r in reductions]
    whole = Run(student, child, logits, safe, smoothing=SMOOTH, reduction="none", **kwargs)
    got = outputs(child, [*anchored, *smooth, whole])
    for r, out in zip(reductions, got[:3]):
        want = expected(shape, seed=seed, ignore=0.4, ignore_index=ignore_index, smoothing=0.0, reduction=r)
        assert_close(out, want[0], name=f"loss with smoothing=0, reduction={r!r}, {what}", mistakes={
            "'mean' divided by all elements, ignored ones included: divide by the number of non-ignored ones":
                by_hand(logits, target, 0.0, r, ignore_index, mean_over_all=True)})
    per_element = tensor_like(got[6], tuple(target.shape), F64, f"loss with smoothing={SMOOTH}, reduction='none' "
                              "(no target ignored)")
    none = tensor_like(got[3], tuple(target.shape), F64, f"loss with smoothing={SMOOTH}, reduction='none', {what}")
    if (none[~valid] != 0).any():
        fail(f"with smoothing={SMOOTH}, {what}: ignored elements have a nonzero loss: an ignored element's whole "
             "loss is 0, the smoothing term too")
    total = per_element[valid].sum()
    assert_close(none, torch.where(valid, per_element, torch.zeros_like(per_element)),
                 name=f"loss with smoothing={SMOOTH}, reduction='none', {what} (against your loss with no target "
                      "ignored)")
    assert_close(got[4], total, name=f"loss with smoothing={SMOOTH}, reduction='sum', {what} (against your loss "
                 "with no target ignored)")
    assert_close(got[5], total / kept, name=f"loss with smoothing={SMOOTH}, reduction='mean', {what} (against your "
                 "loss with no target ignored)", mistakes={
                     "'mean' divided by all elements, ignored ones included: divide by the number of non-ignored "
                     "ones": total / valid.numel()})
    weight = valid.to(F64) / kept
    grads = gradients(child, [anchored[2], smooth[2], whole], [None, None, weight],
                      ["smoothing=0, reduction='mean'", f"smoothing={SMOOTH}, reduction='mean'",
                       f"smoothing={SMOOTH}, no target ignored"])
    want = expected(shape, seed=seed, ignore=0.4, ignore_index=ignore_index, smoothing=0.0, reduction="mean")
    assert_close(grads[0], want[1], name=f"gradient w.r.t. the logits, smoothing=0, reduction='mean', {what}")
    assert_close(grads[1], grads[2], name=f"gradient w.r.t. the logits, smoothing={SMOOTH}, reduction='mean', "
                 f"{what} (against your loss with no target ignored)")


@pytest.mark.points(2)
def test_ignore_index(student, child):
    """ignored targets (-100, and a custom ignore_index) give loss 0 and zero gradient; 'mean' averages over the rest"""
    for ignore_index, what in IGNORE_CASES:
        explain_ignored(lambda: ignored_targets(student, child, 5, ignore_index, what))  # noqa: B023 - called at once


# --- shapes and numerics ------------------------------------------------------------------------------------


def spatial_targets(student, child, shape: tuple[int, ...], seed: int) -> None:
    """Logits `shape` = (N, C, d1, ...): per-position losses and gradients with smoothing=0 against
    F.cross_entropy, and with smoothing=0.2 against the student's own loss on the logits flattened to
    (N * d1 * ..., C)."""
    logits, target, g = data(shape, seed=seed)
    positions = tuple(target.shape)
    count, classes = target.numel(), shape[1]
    flat_logits, flat_target = logits.movedim(1, -1).reshape(count, classes), target.reshape(count)
    anchored = Run(student, child, logits, target, smoothing=0.0, reduction="none")
    smooth = Run(student, child, logits, target, smoothing=SMOOTH, reduction="none")
    flat = Run(student, child, flat_logits, flat_target, smoothing=SMOOTH, reduction="none")
    what = f"logits {shape}"
    want = expected(shape, seed=seed, upstream=True, smoothing=0.0, reduction="none")
    got, got_smooth, got_flat = outputs(child, [anchored, smooth, flat])
    assert_close(got, want[0], name=f"loss with smoothing=0, {what}")
    got_flat = tensor_like(got_flat, (count,), F64, f"loss with smoothing={SMOOTH}, logits ({count}, {classes})")
    assert_close(got_smooth, got_flat.reshape(positions), name=f"loss with smoothing={SMOOTH}, {what} (against "
                 f"your loss on the logits flattened to ({count}, {classes}): the classes are dimension 1)")
    grads = gradients(child, [anchored, smooth, flat], [g, g, g.reshape(count)],
                      [f"smoothing=0, {what}", f"smoothing={SMOOTH}, {what}", f"logits ({count}, {classes})"])
    assert_close(grads[0], want[1], name=f"gradient w.r.t. the logits, smoothing=0, {what}")
    flat_grad = tensor_like(grads[2], (count, classes), F64, f"gradient w.r.t. the logits ({count}, {classes})")
    assert_close(grads[1], flat_grad.reshape(*positions, classes).movedim(-1, 1),
                 name=f"gradient w.r.t. the logits, smoothing={SMOOTH}, {what} (against your loss on the logits "
                      f"flattened to ({count}, {classes}))")


@pytest.mark.points(2)
def test_spatial(student, child):
    """logits (N, C, d1, d2) with targets (N, d1, d2): per-position losses (N, d1, d2) and gradients"""
    spatial_targets(student, child, (2, C, 3, 4), seed=6)


@reference
def large_logits() -> dict:
    """float32 logits of magnitude 100, targets, and F.cross_entropy's per-element loss and gradient
    (smoothing=0) in float64."""
    gen = torch.Generator().manual_seed(7)
    logits = ((torch.rand(N, C, generator=gen, dtype=F64) * 2 - 1) * 100).float()
    logits[:, 0], logits[:, 1] = 100.0, -100.0  # p = 1 for class 0, p = e^-200 for class 1: underflows in softmax
    target = torch.tensor([1, 0, 1, 2, 3, 4, 1, 0])
    out, grad = loss_and_grad(torch_loss, logits.double(), target, smoothing=0.0, reduction="none")
    return {"logits": logits, "target": target, "loss": out, "grad": grad}


def finite(value: Any, name: str) -> None:
    if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
        rows = sorted(set(torch.nonzero(~torch.isfinite(value))[:, 0].tolist()))
        fail(f"the {name} has inf or NaN entries for float32 logits of magnitude 100 (rows {rows}): "
             "log(softmax(x)) underflows to log(0); compute log p with log_softmax (or logits - logsumexp)")


@pytest.mark.points(2)
def test_large_logits(student, child):
    """float32 logits of magnitude 100: finite losses and gradients that match (log_softmax, not log(softmax))"""
    case = large_logits()
    logits, target = case["logits"], case["target"]
    runs = [Run(student, child, logits, target, smoothing=0.0, reduction="none"),
            Run(student, child, logits, target, smoothing=0.1, reduction="none"),
            Run(student, child, logits.double(), target, smoothing=0.1, reduction="none")]
    got = outputs(child, runs, finite=False)  # inf and NaN are the mistake this check names
    finite(got[0], "loss (smoothing=0)")
    assert_close(got[0], case["loss"].float(), name="loss with smoothing=0 for logits of magnitude 100 (float32)")
    finite(got[1], "loss (smoothing=0.1)")
    exact = tensor_like(got[2], (N,), F64, "loss with smoothing=0.1 for the same logits in float64")
    assert_close(got[1], exact.float(), name="loss with smoothing=0.1 for logits of magnitude 100 (float32, against "
                 "your loss on the same logits in float64)")
    grads = gradients(child, runs, [None, None, None], ["smoothing=0", "smoothing=0.1", "smoothing=0.1, float64"],
                      finite=False)
    finite(grads[0], "gradient (smoothing=0)")
    assert_close(grads[0], case["grad"].float(), name="gradient with smoothing=0 for logits of magnitude 100 "
                 "(float32)")
    finite(grads[1], "gradient (smoothing=0.1)")
    exact = tensor_like(grads[2], (N, C), F64, "gradient with smoothing=0.1 for the same logits in float64")
    assert_close(grads[1], exact.float(), name="gradient with smoothing=0.1 for logits of magnitude 100 (float32, "
                 "against your gradient for the same logits in float64)")


# --- bad arguments ----------------------------------------------------------------------------------------


INVALID = (({"smoothing": -0.1}, "smoothing=-0.1"), ({"smoothing": 1.5}, "smoothing=1.5"),
           ({"reduction": "avg"}, "reduction='avg'"))


def test_invalid_arguments(student, child):
    """smoothing outside [0, 1] and an unknown reduction raise ValueError"""
    logits, target, _ = data()
    for kwargs, what in INVALID:
        exc = student_raises(student.LabelSmoothingCrossEntropy(**kwargs)(logits, target))
        if "ValueError" not in exc.types:
            fail(f"LabelSmoothingCrossEntropy({what}) raised {exc.type}: {exc.message[:200]!r}; raise a ValueError "
                 "that says what is allowed")


# --- GPU ----------------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_gpu_label_smoothing(student, child):
    """on CUDA: smoothing=0 matches F.cross_entropy there, and smoothing=0.1 matches your loss on the CPU"""
    logits, target, g = data(seed=8, dtype=torch.float32)
    runs = [Run(student, child, logits.cuda(), target.cuda(), smoothing=0.0, reduction="none"),
            Run(student, child, logits.cuda(), target.cuda(), smoothing=0.1, reduction="none"),
            Run(student, child, logits, target, smoothing=0.1, reduction="none")]
    want = expected(seed=8, dtype=torch.float32, device="cuda", upstream=True, smoothing=0.0, reduction="none")
    got = outputs(child, runs)
    assert_close(got[0], want[0].float(), name="loss on CUDA, smoothing=0")
    on_cpu = tensor_like(got[2], (N,), torch.float32, "loss on the CPU, smoothing=0.1")
    assert_close(got[1], on_cpu.cuda(), name="loss on CUDA, smoothing=0.1 (against your loss on the CPU)")
    grads = gradients(child, runs, [g.cuda(), g.cuda(), g], ["on CUDA", "on CUDA", "on the CPU"])
    assert_close(grads[0], want[1].float(), name="gradient on CUDA, smoothing=0")
    on_cpu = tensor_like(grads[2], (N, C), torch.float32, "gradient on the CPU, smoothing=0.1")
    assert_close(grads[1], on_cpu.cuda(), name="gradient on CUDA, smoothing=0.1 (against your gradient on the CPU)")


@reference
def autocast_case() -> dict:
    """float16 logits on CUDA (as a half-precision model gives them), targets, and F.cross_entropy's loss
    under autocast(float16)."""
    logits, target, _ = data(seed=9, dtype=torch.float16, device="cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        out = torch_loss(logits, target, smoothing=0.0)
    return {"logits": logits, "target": target, "loss": out.float()}


@pytest.mark.gpu
def test_gpu_autocast(student, child):
    """under autocast(float16) on CUDA, float16 logits give a finite loss close to F.cross_entropy's"""
    case = autocast_case()
    loss_fn = student.LabelSmoothingCrossEntropy(smoothing=0.0)
    out = fetch(child.autocast(loss_fn, case["logits"], case["target"], device_type="cuda", dtype=torch.float16))
    if not isinstance(out, torch.Tensor) or out.dtype not in (torch.float16, torch.float32) or out.dim():
        fail(f"under autocast the loss should be a 0-d float16 or float32 tensor, not {out!r:.120}")
    finite(out.unsqueeze(0), "loss under autocast")
    assert_close(out.float(), case["loss"], name="loss under autocast(float16)", rtol=1e-2, atol=1e-2)
