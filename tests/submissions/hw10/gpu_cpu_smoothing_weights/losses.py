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
        if not 0.0 <= smoothing <= 1.0:
            raise ValueError(f"smoothing must be in [0, 1], got {smoothing}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be 'none', 'mean' or 'sum', not {reduction!r}")
        self.smoothing = smoothing
        self.reduction = reduction
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The label-smoothed cross-entropy of ``logits`` against class indices ``target``, reduced as asked."""
        n_classes = logits.shape[1]
        valid = target != self.ignore_index
        safe_target = torch.where(valid, target, torch.zeros_like(target))  # any class index will do
        # log_softmax is stable for any logits; log(softmax(x)) is -inf once a probability underflows
        log_p = F.log_softmax(logits, dim=1)
        nll = -log_p.gather(1, safe_target.unsqueeze(1)).squeeze(1)
        per_class = torch.full((n_classes,), 1 / n_classes, dtype=logits.dtype).view(1, -1, *[1] * (logits.dim() - 2))
        uniform = -(log_p * per_class).sum(dim=1)
        loss = (1 - self.smoothing) * nll + self.smoothing * uniform
        # where() rather than multiplying by the mask: ignored elements get exactly zero gradient
        loss = torch.where(valid, loss, torch.zeros_like(loss))

        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        return loss.sum() / valid.sum()  # 0/0 = nan when every element is ignored, as F.cross_entropy


class HuberLoss(nn.Module):
    """0.5 * d^2 where |d| < delta, delta * (|d| - 0.5 * delta) elsewhere, d = input - target."""

    def __init__(self, delta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        if not delta > 0:
            raise ValueError(f"delta must be positive, got {delta}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be 'none', 'mean' or 'sum', not {reduction!r}")
        self.delta = delta
        self.reduction = reduction

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The Huber loss between ``input`` and ``target`` (same shape), reduced as asked."""
        diff = input - target
        abs_diff = diff.abs()
        loss = torch.where(abs_diff < self.delta, 0.5 * diff * diff, self.delta * (abs_diff - 0.5 * self.delta))
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        return loss.mean()
