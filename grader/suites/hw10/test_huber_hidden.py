"""Hidden checks of HuberLoss: the points where the branches meet, a tiny and a huge delta, float32.
They reuse the public checks' data, reference and helpers (loaded by path)."""
from __future__ import annotations

import pytest
import torch

from kit.grader.suite import reference, sibling

public = sibling(__file__, "test_huber.py")

pytestmark = [pytest.mark.hidden, pytest.mark.component("HuberLoss")]


@reference
def boundary() -> dict:
    """Errors d = 0, +-delta (delta=1) and a few others, F.huber_loss's per-element loss and input gradient."""
    target = torch.linspace(-1.0, 1.0, 8, dtype=torch.float64)
    d = torch.tensor([0.0, 1.0, -1.0, 0.0, 0.5, -2.0, 1.0, 3.0], dtype=torch.float64)
    g = torch.linspace(0.5, 2.0, 8, dtype=torch.float64)
    out = public.loss_and_grads(torch.nn.functional.huber_loss, target + d, target, g, reduction="none")
    return {"input": target + d, "target": target, "g": g, "want": out}


def test_hidden_huber_boundary(student, child):
    """d = 0 and |d| = delta exactly: losses 0 and 0.5 * delta^2, gradients 0 and +-delta (no NaN)"""
    case = boundary()
    public.compare(student, child, case["input"], case["target"], case["g"], want=case["want"],
                   what="d in {0, +-delta}", reduction="none")


def test_hidden_huber_small_delta(student, child):
    """delta=0.01: almost every element on the linear branch"""
    input, target, g = public.data(seed=30, high=2.0)
    want = public.expected(seed=30, high=2.0, upstream=True, delta=0.01, reduction="none")
    public.compare(student, child, input, target, g, want=want, what="delta=0.01", delta=0.01, reduction="none")


def test_hidden_huber_large_delta(student, child):
    """delta=100: every element on the quadratic branch (half the squared error), reduction 'mean'"""
    input, target, _ = public.data(seed=31, high=5.0)
    want = public.expected(seed=31, high=5.0, delta=100.0)
    public.compare(student, child, input, target, want=want, what="delta=100", delta=100.0)


def test_hidden_huber_float32(student, child):
    """float32 input and target: the loss stays float32 and matches"""
    input, target, g = public.data(seed=32, dtype=torch.float32)
    want = public.expected(seed=32, dtype=torch.float32, upstream=True, reduction="none")
    public.compare(student, child, input, target, g, want=want, what="float32", reduction="none")
