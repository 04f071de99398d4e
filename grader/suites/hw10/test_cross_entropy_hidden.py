"""Hidden checks of LabelSmoothingCrossEntropy: many classes, smoothing=1, 3-D positions, and ignore_index
corner cases. They reuse the public checks' data, reference and helpers (loaded by path)."""
from __future__ import annotations

import math

import pytest
import torch

from kit.grader.suite import assert_close, fail, sibling

public = sibling(__file__, "test_cross_entropy.py")

pytestmark = [pytest.mark.hidden, pytest.mark.component("LabelSmoothingCrossEntropy")]


def against_torch(student, child, shape, seed: int, what: str, upstream: bool = False, **loss) -> None:
    """The student's loss and gradient on data(shape, seed) against F.cross_entropy's."""
    logits, target, g = public.data(shape, seed=seed)
    run = public.Run(student, child, logits, target, **loss)
    want = public.expected(shape, seed=seed, upstream=upstream, **loss)
    [out] = public.outputs(child, [run])
    assert_close(out, want[0], name=f"loss, {what}")
    [grad] = public.gradients(child, [run], [g if upstream else None], [what])
    assert_close(grad, want[1], name=f"gradient w.r.t. the logits, {what}")


def test_hidden_many_classes(student, child):
    """100 classes, smoothing=0.2, reduction 'mean': loss and gradient"""
    against_torch(student, child, (16, 100), 20, "100 classes, smoothing=0.2", smoothing=0.2)


def test_hidden_smoothing_one(student, child):
    """smoothing=1: the target is the uniform distribution (per-element losses and gradients)"""
    against_torch(student, child, (public.N, public.C), 21, "smoothing=1", upstream=True, smoothing=1.0,
                  reduction="none")


def test_hidden_spatial_3d(student, child):
    """logits (N, C, d1, d2, d3) with targets (N, d1, d2, d3)"""
    public.spatial_targets(student, child, (2, public.C, 2, 3, 2), seed=22)


def test_hidden_ignore_valid_class(student, child):
    """ignore_index=1, a real class index: targets equal to 1 are ignored (not just negative ones)"""
    public.ignored_targets(student, child, 23, 1, "ignore_index=1")


def test_hidden_all_ignored(student, child):
    """every target ignored (smoothing=0.1): 'none' gives zeros, 'sum' gives 0 with zero gradient, 'mean' gives
    NaN like F.cross_entropy"""
    logits, _, _ = public.data(seed=24)
    target = torch.full((public.N,), -100)
    runs = [public.Run(student, child, logits, target, reduction=r) for r in ("none", "sum", "mean")]
    none, total, mean = public.outputs(child, runs, finite=False)
    assert_close(none, torch.zeros(public.N, dtype=torch.float64), name="reduction='none', all ignored")
    assert_close(total, torch.tensor(0.0, dtype=torch.float64), name="reduction='sum', all ignored")
    value = mean.item() if isinstance(mean, torch.Tensor) and mean.numel() == 1 else mean
    if not (isinstance(value, float) and math.isnan(value)):
        fail(f"reduction='mean' with every target ignored returned {mean!r}; the handout asks for NaN "
             "(0 / 0, as F.cross_entropy returns)")
    [grad] = public.gradients(child, runs[1:2], [None], ["reduction='sum', all ignored"])
    assert_close(grad, torch.zeros_like(logits), name="gradient of reduction='sum', all ignored")
