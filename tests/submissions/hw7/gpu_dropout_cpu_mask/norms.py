"""Layer normalisation, group normalisation and dropout, written with tensor operations.

Each class is a drop-in replacement for its torch module: the same constructor, the same
parameters (and so the same ``state_dict``), the same output and gradients.

    MyLayerNorm   nn.LayerNorm   normalise every sample over its last dimensions
    MyGroupNorm   nn.GroupNorm   normalise every sample over groups of channels
    MyDropout     nn.Dropout     zero elements at random in training, scale the rest
"""
from __future__ import annotations

import numbers

import torch
from torch import nn


class MyLayerNorm(nn.Module):
    """Normalise over the last ``len(normalized_shape)`` dimensions, then scale and shift elementwise.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, with the mean and the biased
    variance taken over those dimensions for every position of the leading ones.
    """

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(size) for size in normalized_shape)
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(self.normalized_shape))
            if bias:
                self.bias = nn.Parameter(torch.zeros(self.normalized_shape))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        centred = x - mean
        # two passes (mean first, then squared deviations): E[x^2] - E[x]^2 cancels for large means
        var = centred.square().mean(dim=dims, keepdim=True)  # biased: divides by the count
        y = centred / torch.sqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class MyGroupNorm(nn.Module):
    """Split the channels into ``num_groups`` groups of consecutive channels and normalise every
    sample over each group (its channels and all spatial positions), then scale and shift per channel.

    Inputs are ``(N, C, *)``: any number of spatial dimensions, none included.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.affine = affine
        if num_channels % num_groups != 0:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups = num_groups
        self.num_channels = num_channels
        if affine:
            self.weight = nn.Parameter(torch.ones(num_channels))
            self.bias = nn.Parameter(torch.zeros(num_channels))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        # channel c belongs to group c // (C / G): consecutive channels, so a plain reshape groups them
        groups = x.reshape(n, self.num_groups, -1)
        mean = groups.mean(dim=-1, keepdim=True)
        centred = groups - mean
        var = centred.square().mean(dim=-1, keepdim=True)
        y = (centred / torch.sqrt(var + self.eps)).reshape(x.shape)
        if self.affine:
            per_channel = (1, -1) + (1,) * (x.dim() - 2)  # (1, C, 1, ...): broadcasts over any spatial dims
            y = y * self.weight.view(per_channel) + self.bias.view(per_channel)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class MyDropout(nn.Module):
    """In training mode, zero every element independently with probability ``p`` and scale the
    others by ``1 / (1 - p)``, so that the expected output is the input; in eval mode, the identity."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return x * 0.0  # not x * mask / (1 - p): that is 0 / 0 = NaN
        keep = torch.rand(x.shape) >= self.p
        return x * keep / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
