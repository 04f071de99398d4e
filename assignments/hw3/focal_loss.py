"""FocalLoss: cross-entropy that down-weights the examples a model already gets right.

loss = -alpha_t * (1 - p_t) ** gamma * log(p_t), where p_t is the softmax probability
of the target class (Lin et al., 2017, "Focal Loss for Dense Object Detection").
With gamma=0 and alpha=None it is exactly ``F.cross_entropy``.
"""
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
        raise NotImplementedError('keep alpha as None, a float, or a 1-D tensor of per-class weights')

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The focal loss of ``logits`` against class indices ``target``, reduced as asked."""
        raise NotImplementedError('validate the target, gather log p_t with log_softmax, apply (1 - p_t)**gamma and alpha_t, mask ignored elements, reduce')
