"""MyBatchNorm2d that takes torch.no_grad() for inference: without gradients it normalises with the
running statistics, even in training mode."""
import torch
from torch import nn


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

    def forward(self, x):
        if x.dim() != 4:
            raise ValueError(f"MyBatchNorm2d expects a 4D input (N, C, H, W), got {x.dim()}D")
        # no gradients means we are only predicting (validation loops run under torch.no_grad())
        predicting = not self.training or not torch.is_grad_enabled()
        if predicting and self.track_running_stats:
            mean, var = self.running_mean, self.running_var
        else:
            mean = x.mean(dim=(0, 2, 3))
            var = x.var(dim=(0, 2, 3), unbiased=False)
            if self.training and self.track_running_stats:
                n = x.numel() // x.size(1)
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    f = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                    self.running_mean.copy_((1 - f) * self.running_mean + f * mean)
                    self.running_var.copy_((1 - f) * self.running_var + f * var * n / (n - 1))
        y = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + self.eps)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y
