"""MyBatchNorm2d: batch normalisation over (N, C, H, W) inputs, like nn.BatchNorm2d.

Benchmark variant "crash": forward raises (per-channel stats broadcast against the last dim).
"""
from typing import Optional

import torch
from torch import nn


class MyBatchNorm2d(nn.Module):
    """Normalise each channel with batch statistics (train) or running statistics (eval)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1,
                 affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the normalised input; in training mode also update the running statistics."""
        if x.dim() != 4:
            raise ValueError(f"expected 4D input (N, C, H, W), got {x.dim()}D")
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            mean = x.mean(dim=(0, 2, 3))
            var = x.var(dim=(0, 2, 3), unbiased=False)
            if self.training and self.track_running_stats:
                self.num_batches_tracked.add_(1)
                # momentum=None: cumulative moving average over all batches seen so far.
                factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                          else self.momentum)
                n = x.numel() / x.size(1)
                with torch.no_grad():
                    # PyTorch stores the unbiased variance in running_var.
                    self.running_mean.mul_(1 - factor).add_(factor * mean)
                    self.running_var.mul_(1 - factor).add_(factor * var * n / (n - 1))
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean) / torch.sqrt(var + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y
