"""hw10: two losses written out by hand.

LabelSmoothingCrossEntropy is ``F.cross_entropy(logits, target, label_smoothing=smoothing)``:
the target distribution puts 1 - smoothing + smoothing / C on the target class and
smoothing / C on every other class (Szegedy et al., 2016). HuberLoss is ``nn.HuberLoss``:
quadratic for small errors, linear for large ones (Huber, 1964).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

REDUCTIONS = ("none", "mean", "sum")


class LabelSmoothingCrossEntropy(nn.Module):
    """Cross-entropy against smoothed targets, over logits (N, C) or (N, C, d1, ...) and int64 targets
    (N,) or (N, d1, ...)."""

    def __init__(self, smoothing: float = 0.1, reduction: str = "mean", ignore_index: int = -100) -> None:
        super().__init__()
        raise NotImplementedError('check smoothing (in [0, 1]) and reduction (ValueError), keep the settings')

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The label-smoothed cross-entropy of ``logits`` against class indices ``target``, reduced as asked."""
        raise NotImplementedError('log_softmax over the classes (dim 1), mix -log p_target with the mean of -log p over the classes, mask ignored elements, reduce')


class HuberLoss(nn.Module):
    """0.5 * d^2 where |d| < delta, delta * (|d| - 0.5 * delta) elsewhere, d = input - target."""

    def __init__(self, delta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        raise NotImplementedError('check delta (> 0) and reduction (ValueError), keep the settings')

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The Huber loss between ``input`` and ``target`` (same shape), reduced as asked."""
        raise NotImplementedError('the quadratic branch where |input - target| < delta, the linear one elsewhere; reduce')
