"""FocalLoss after the widely copied focal_loss_pytorch: p_t is taken from logpt.data, so no gradient
flows through the focal factor (1 - p_t)^gamma."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class FocalLoss(nn.Module):
    def __init__(self, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
        super().__init__()
        self.gamma = gamma
        if isinstance(alpha, (list, tuple)):
            alpha = torch.tensor(alpha)
        self.alpha = alpha
        self.reduction = reduction
        self.ignore_index = ignore_index

    def forward(self, input, target):
        if target.dtype != torch.long:
            raise TypeError(f"target must be a LongTensor of class indices, got {target.dtype}")
        if target.shape != input.shape[:1] + input.shape[2:]:
            raise ValueError(f"target of shape {tuple(target.shape)} does not match input {tuple(input.shape)}")
        shape = target.shape
        if input.dim() > 2:
            input = input.movedim(1, -1)  # N,C,H,W => N,H,W,C
        input = input.reshape(-1, input.size(-1))
        target = target.reshape(-1)
        keep = target != self.ignore_index
        target = target.masked_fill(~keep, 0)

        logpt = F.log_softmax(input, dim=1)
        logpt = logpt.gather(1, target.view(-1, 1)).view(-1)
        pt = logpt.data.exp()

        if self.alpha is not None:
            if isinstance(self.alpha, torch.Tensor):
                at = self.alpha.to(input).gather(0, target)
            else:
                at = torch.full_like(logpt, self.alpha)
            logpt = logpt * at

        loss = -1 * (1 - pt) ** self.gamma * logpt
        loss = torch.where(keep, loss, torch.zeros_like(loss))
        if self.reduction == "none":
            return loss.view(shape)
        if self.reduction == "sum":
            return loss.sum()
        return loss.sum() / keep.sum()
