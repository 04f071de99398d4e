"""A correct MyBatchNorm2d written differently from the solution (channels-first flatten, var_mean, lerp_)."""
import torch
from torch import nn


class MyBatchNorm2d(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError("MyBatchNorm2d wants (N, C, H, W), got shape %s" % (tuple(x.shape),))
        flat = x.transpose(0, 1).reshape(x.shape[1], -1)  # (C, N*H*W)
        if self.training or self.running_mean is None:
            var, mean = torch.var_mean(flat, dim=1, correction=0)
            if self.training and self.running_mean is not None:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    w = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.item()
                    n = flat.shape[1]
                    self.running_mean.lerp_(mean.detach(), w)
                    self.running_var.lerp_(var.detach() * n / (n - 1), w)
        else:
            mean, var = self.running_mean, self.running_var
        inv_std = torch.rsqrt(var + self.eps)
        scale = inv_std if self.weight is None else self.weight * inv_std
        shift = -mean * scale if self.bias is None else self.bias - mean * scale
        return x * scale[:, None, None] + shift[:, None, None]
