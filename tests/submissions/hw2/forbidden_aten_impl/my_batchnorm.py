"""MyBatchNorm2d through torch.ops.aten._batch_norm_impl_index, spelled plainly (issue 20: it was not listed).

A drop-in replacement for ``nn.BatchNorm2d``: same constructor, same parameters
(``weight``, ``bias``), same buffers (``running_mean``, ``running_var``,
``num_batches_tracked``), so it loads a ``state_dict`` taken from the torch module.
"""
from __future__ import annotations

import torch
from torch import nn


class MyBatchNorm2d(nn.Module):
    """Normalise every channel over (N, H, W), then scale and shift it.

    Training mode normalises with the statistics of the batch (biased variance) and
    folds them into the running statistics (unbiased variance); evaluation mode
    normalises with the running statistics and changes nothing.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            # gamma = 1, beta = 0: a freshly built layer starts as a pure normalisation
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            # buffers, not plain attributes: they belong in state_dict() and follow .to()/.cuda()
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` (N, C, H, W) per channel; in training also update the running statistics."""
        if x.dim() != 4:
            raise ValueError(f"expected a 4D input (N, C, H, W), got a {x.dim()}D input")
        # FORBIDDEN: the ATen operator behind F.batch_norm does all the work
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return torch.ops.aten._batch_norm_impl_index(x, self.weight, self.bias, self.running_mean, self.running_var,
                                                     self.training or not self.track_running_stats, momentum,
                                                     self.eps, False)[0]

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, n: int) -> None:
        """Fold one batch's mean and biased variance (over n values per channel) into the buffers."""
        self.num_batches_tracked += 1
        # momentum=None: cumulative average, the k-th batch gets weight 1/k
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased_var = var * (n / (n - 1))
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased_var, alpha=factor)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")
