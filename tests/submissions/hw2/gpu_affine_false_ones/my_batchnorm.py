"""affine=False handled with a weight of ones and a bias of zeros made in forward without a device:
right on the CPU; on a GPU they stay on the CPU and the multiplication refuses to mix them."""
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
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            n = x.numel() // x.size(1)  # values per channel
            if self.training and n < 2:
                raise ValueError("expected more than 1 value per channel when training")
            mean = x.mean(dim=(0, 2, 3))
            # two passes (mean first, then squared deviations): E[x^2] - E[x]^2 cancels catastrophically
            var = (x - mean[None, :, None, None]).square().mean(dim=(0, 2, 3))  # biased: divides by n
            if self.training and self.track_running_stats:
                self._update_running_stats(mean, var, n)
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps)
        weight = self.weight if self.affine else torch.ones(self.num_features, dtype=x.dtype)
        bias = self.bias if self.affine else torch.zeros(self.num_features, dtype=x.dtype)
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

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
