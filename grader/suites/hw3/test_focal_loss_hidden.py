"""Hidden checks of hw3: more classes, gamma below 1, 3-D positions, and ignore_index corner cases.

They reuse the public suite's data and reference (loaded by path from the file next to
this one, so nothing depends on pytest's import mode).
"""
from __future__ import annotations

import math

import pytest
import torch

from kit.grader.suite import assert_close, fail, fetch, reference, sibling

public = sibling(__file__, "test_focal_loss.py")

pytestmark = [pytest.mark.hidden, pytest.mark.component("FocalLoss")]


@reference
def many_classes() -> dict:
    """100 classes: logits, targets, a float64 alpha tensor, and the reference's loss and gradient."""
    logits, target, _ = public.data(shape=(16, 100), seed=20)
    alpha = torch.rand(100, generator=torch.Generator().manual_seed(21), dtype=torch.float64)
    return {"inputs": (logits, target), "alpha": alpha,
            "want": public.focal_and_grad(logits, target, gamma=2.0, alpha=alpha)}


@reference
def valid_class_ignored() -> dict:
    """data(seed=25) with the first three targets set to 1, and the reference's loss and gradient for
    ignore_index=1."""
    logits, target, _ = public.data(seed=25)
    target[:3] = 1
    return {"inputs": (logits, target), "want": public.focal_and_grad(logits, target, gamma=2.0, ignore_index=1)}


@pytest.mark.points(1)
def test_hidden_many_classes(student, child):
    """100 classes, per-class alpha as a float64 tensor, reduction 'mean': value and gradient"""
    case = many_classes()
    public.compare(student, child, *case["inputs"], want=case["want"], what="100 classes", gamma=2.0,
                   alpha=case["alpha"])


@pytest.mark.points(1)
def test_hidden_gamma_half(student, child):
    """gamma=0.5 with moderate logits (p_t well below 1): per-element values and gradients"""
    logits, target, g = public.data(seed=22, scale=1.0)
    want = public.expected(seed=22, scale=1.0, upstream=True, gamma=0.5, reduction="none")
    detached = public.focal_and_grad(logits, target, g, gamma=0.5, reduction="none", detach_focal=True)[1]
    public.compare(student, child, logits, target, g, want=want, what="gamma=0.5", focal_grad=True, grad_mistakes={
        "the focal term (1 - p_t)^gamma was detached: the gradient must flow through it too": detached,
    }, gamma=0.5, reduction="none")


@pytest.mark.points(1)
def test_hidden_spatial_3d(student, child):
    """logits (N, C, d1, d2, d3) with targets (N, d1, d2, d3)"""
    logits, target, g = public.data(shape=(2, public.C, 2, 3, 2), seed=23)
    want = public.expected(shape=(2, public.C, 2, 3, 2), seed=23, upstream=True, gamma=2.0, reduction="none")
    public.compare(student, child, logits, target, g, want=want, what="logits (2, 5, 2, 3, 2)", gamma=2.0,
                   reduction="none")


@pytest.mark.points(1)
def test_hidden_ignore_with_alpha(student, child):
    """ignored targets (-100) together with per-class alpha: alpha must not be indexed with -100"""
    logits, target, _ = public.data(seed=24, ignore=0.4)
    want = public.expected(seed=24, ignore=0.4, gamma=2.0, alpha=tuple(public.ALPHA))
    public.compare(student, child, logits, target, want=want, what="alpha list and ignored targets", gamma=2.0,
                   alpha=public.ALPHA)


@pytest.mark.points(1)
def test_hidden_ignore_valid_class(student, child):
    """ignore_index=1, a real class index: targets equal to 1 are ignored (not just negative ones)"""
    case = valid_class_ignored()
    public.compare(student, child, *case["inputs"], want=case["want"], what="ignore_index=1", gamma=2.0,
                   ignore_index=1)


@pytest.mark.points(1)
def test_hidden_all_ignored(student, child):
    """every target ignored: 'none' gives zeros, 'sum' gives 0 with zero gradient, 'mean' gives NaN
    like F.cross_entropy"""
    logits, _, _ = public.data(seed=26)
    target = torch.full((public.N,), -100)
    leaf = child.leaf(logits)
    total = student.FocalLoss(reduction="sum")(leaf, target)
    total.backward()
    per_element = student.FocalLoss(reduction="none")(logits, target)
    mean = student.FocalLoss()(logits, target)
    total, grad, per_element, mean = fetch(total, leaf.grad, per_element, mean, finite=False)
    assert_close(per_element, torch.zeros(public.N, dtype=torch.float64), name="reduction='none', all ignored")
    assert_close(total, torch.tensor(0.0, dtype=torch.float64), name="reduction='sum', all ignored")
    if grad is not None:  # no gradient at all is as good as a zero one here
        assert_close(grad, torch.zeros_like(logits), name="gradient of reduction='sum', all ignored")
    value = mean.item() if isinstance(mean, torch.Tensor) and mean.numel() == 1 else mean
    if not (isinstance(value, float) and math.isnan(value)):
        fail(f"reduction='mean' with every target ignored returned {mean!r}; the handout asks for NaN "
             "(0 / 0, as F.cross_entropy returns)")
