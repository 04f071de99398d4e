"""FocalLoss with a single float alpha only: a list or tensor of per-class weights is refused."""
import torch
import torch.nn.functional as F
from torch import nn


class FocalLoss(nn.Module):
    def __init__(self, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
        super().__init__()
        if alpha is not None and not isinstance(alpha, (int, float)):
            raise ValueError("alpha must be None or a float")
        self.gamma = gamma
        self.alpha = alpha
        self.reduction = reduction
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        if target.dtype != torch.int64:
            raise TypeError("target must hold int64 class indices")
        if target.shape != (logits.shape[0], *logits.shape[2:]):
            raise ValueError("target must have shape (N, d1, ...) for logits (N, C, d1, ...)")
        valid = target != self.ignore_index
        t = torch.where(valid, target, 0)
        log_p = F.log_softmax(logits, dim=1).gather(1, t.unsqueeze(1)).squeeze(1)
        loss = -(1 - log_p.exp()) ** self.gamma * log_p
        if self.alpha is not None:
            loss = self.alpha * loss
        loss = torch.where(valid, loss, 0.0)
        if self.reduction == "sum":
            return loss.sum()
        if self.reduction == "mean":
            return loss.sum() / valid.sum()
        return loss
