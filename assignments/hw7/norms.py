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
        raise NotImplementedError('store normalized_shape as a tuple; create weight (ones) and bias (zeros) of that shape as nn.Parameters, or None')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError('normalise over the last len(normalized_shape) dimensions (biased variance), then weight and bias')

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
        raise NotImplementedError('raise ValueError unless num_groups divides num_channels; store the sizes; create weight (ones) and bias (zeros) of shape (num_channels,) as nn.Parameters, or None')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError('normalise each group of consecutive channels of each sample (biased variance), then weight and bias per channel')

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class MyDropout(nn.Module):
    """In training mode, zero every element independently with probability ``p`` and scale the
    others by ``1 / (1 - p)``, so that the expected output is the input; in eval mode, the identity."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        raise NotImplementedError('raise ValueError unless 0 <= p <= 1; store p')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError('identity in eval mode or for p = 0; zeros for p = 1; else a fresh random mask, kept elements scaled by 1 / (1 - p)')

    def extra_repr(self) -> str:
        return f"p={self.p}"
