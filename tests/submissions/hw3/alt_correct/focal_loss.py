"""A correct FocalLoss written differently from the solution: classes moved last, logsumexp, one-hot,
boolean indexing for ignore_index, alpha as a registered buffer."""
import torch
from torch import nn


class FocalLoss(nn.Module):
    def __init__(self, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
        super().__init__()
        self.gamma, self.reduction, self.ignore_index = gamma, reduction, ignore_index
        self.scalar_alpha = None
        if alpha is None or isinstance(alpha, (int, float)):
            self.scalar_alpha = alpha
            self.register_buffer("alpha", None)
        else:
            self.register_buffer("alpha", torch.tensor(alpha, dtype=torch.float64) if not torch.is_tensor(alpha)
                                 else alpha.detach().clone().double())

    def forward(self, logits, target):
        if not torch.is_tensor(target) or target.dtype is not torch.int64:
            raise TypeError("target should be an int64 tensor of class indices")
        if target.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(f"target shape {tuple(target.shape)} does not fit logits {tuple(logits.shape)}")
        num_classes = logits.shape[1]
        flat = logits.movedim(1, -1).reshape(-1, num_classes)
        t = target.reshape(-1)
        keep = t != self.ignore_index
        losses = flat.new_zeros(t.shape)
        z, tk = flat[keep], t[keep]
        onehot = torch.nn.functional.one_hot(tk, num_classes).to(z.dtype)
        log_pt = (z * onehot).sum(-1) - torch.logsumexp(z, dim=-1)
        focal = -torch.pow(-torch.expm1(log_pt), self.gamma) * log_pt
        if self.alpha is not None:
            focal = focal * self.alpha.to(z)[tk]
        elif self.scalar_alpha is not None:
            focal = focal * self.scalar_alpha
        losses = losses.masked_scatter(keep, focal)
        if self.reduction == "none":
            return losses.reshape(target.shape)
        if self.reduction == "sum":
            return losses.sum()
        return losses.sum() / keep.sum()
