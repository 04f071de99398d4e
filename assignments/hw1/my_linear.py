"""hw1: a fully connected layer, y = x W^T + b, written with plain tensor operations."""
import math

import torch
from torch import nn


class MyLinear(nn.Module):
    """Applies y = x @ weight.T + bias to the last dimension of x, like nn.Linear."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        raise NotImplementedError('create weight (out, in) and bias (out,) or None as nn.Parameters, initialised like nn.Linear')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError('return x @ weight.T (+ bias), for any number of leading dimensions')

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
