"""MyBatchNorm2d after the d2l.ai chapter on batch normalisation: a function does the maths, the module
keeps the state. The mode is read from torch.is_grad_enabled(), as in d2l, not from self.training."""
import torch
from torch import nn


def batch_norm(X, gamma, beta, moving_mean, moving_var, eps, factor, track):
    # Use is_grad_enabled to determine whether we are in training mode
    if track and not torch.is_grad_enabled():
        # In prediction mode, use the mean and variance obtained by moving average
        X_hat = (X - moving_mean[None, :, None, None]) / torch.sqrt(moving_var[None, :, None, None] + eps)
    else:
        mean = X.mean(dim=(0, 2, 3), keepdim=True)
        var = ((X - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        X_hat = (X - mean) / torch.sqrt(var + eps)
        if track:
            n = X.numel() / X.shape[1]
            with torch.no_grad():
                moving_mean.mul_(1.0 - factor).add_(factor * mean.view(-1))
                moving_var.mul_(1.0 - factor).add_(factor * var.view(-1) * n / (n - 1))
    if gamma is not None:
        X_hat = gamma[None, :, None, None] * X_hat + beta[None, :, None, None]
    return X_hat


class MyBatchNorm2d(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
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

    def forward(self, X):
        if X.dim() != 4:
            raise ValueError(f"expected 4D input (N, C, H, W), got {X.dim()}D")
        factor = 0.0
        if self.track_running_stats and torch.is_grad_enabled():
            self.num_batches_tracked += 1
            factor = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.item()
        return batch_norm(X, self.weight, self.bias, self.running_mean, self.running_var, self.eps, factor,
                          self.track_running_stats)
