"""alpha kept as a plain CPU tensor and indexed with the target: right on the CPU; on a GPU a CPU
tensor cannot be indexed with the target's GPU indices (and .to() does not move a plain attribute)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class FocalLoss(nn.Module):
    """Multi-class focal loss over logits (N, C) or (N, C, d1, ...) and int64 targets (N,) or (N, d1, ...)."""

    def __init__(self, gamma: float = 2.0, alpha: float | Sequence[float] | torch.Tensor | None = None,
                 reduction: str = "mean", ignore_index: int = -100) -> None:
        super().__init__()
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"reduction must be 'none', 'mean' or 'sum', not {reduction!r}")
        self.gamma = gamma
        self.reduction = reduction
        self.ignore_index = ignore_index
        if alpha is None or isinstance(alpha, (int, float)):
            self.alpha = alpha
        else:
                self.alpha = torch.tensor(alpha, dtype=torch.float64)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The focal loss of ``logits`` against class indices ``target``, reduced as asked."""
        if target.dtype != torch.long:
            raise TypeError(f"target must hold class indices as int64 (torch.long), got {target.dtype}")
        if logits.dim() < 2:
            raise ValueError(f"logits must be (N, C) or (N, C, d1, ...), got shape {tuple(logits.shape)}")
        expected_shape = (logits.shape[0], *logits.shape[2:])
        if tuple(target.shape) != expected_shape:
            raise ValueError(f"target must have shape {expected_shape} for logits of shape "
                             f"{tuple(logits.shape)}, got {tuple(target.shape)}")

        valid = target != self.ignore_index
        safe_target = torch.where(valid, target, torch.zeros_like(target))  # any class index will do
        # log_softmax is stable for any logits; log(softmax(x)) is -inf once a probability underflows
        log_pt = F.log_softmax(logits, dim=1).gather(1, safe_target.unsqueeze(1)).squeeze(1)
        pt = log_pt.exp()
        loss = -((1 - pt) ** self.gamma) * log_pt
        if isinstance(self.alpha, torch.Tensor):
            loss = self.alpha.to(logits.dtype)[safe_target] * loss
        elif self.alpha is not None:
            loss = self.alpha * loss
        # where() rather than multiplying by the mask: ignored elements get exactly zero gradient
        loss = torch.where(valid, loss, torch.zeros_like(loss))

        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        return loss.sum() / valid.sum()  # 0/0 = nan when every element is ignored, as F.cross_entropy
