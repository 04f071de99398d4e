"""MyBatchNorm2d: batch normalisation of (N, C, H, W) inputs, written by hand.

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
        raise NotImplementedError('create weight/bias (or None) and register running_mean, running_var, num_batches_tracked as buffers')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` (N, C, H, W) per channel; in training also update the running statistics."""
        raise NotImplementedError('check the input is 4-D, pick batch or running statistics, normalise, scale and shift')

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, n: int) -> None:
        """Fold one batch's mean and biased variance (over n values per channel) into the buffers."""
        raise NotImplementedError('count the batch, then blend in the mean and the unbiased variance')

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")
