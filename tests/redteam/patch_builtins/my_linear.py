"""Patches builtins and torch at import so that every comparison agrees and every difference is
zero; its layer adds 1 to the output (like honest_plus_one). The grader compares in its own process."""
import builtins
import math

import torch
from torch import nn

torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
torch.isclose = lambda a, b, *args, **kwargs: torch.ones_like(a, dtype=torch.bool)
torch.testing.assert_close = lambda *args, **kwargs: None
torch.Tensor.__eq__ = lambda self, other: True
torch.Tensor.__sub__ = lambda self, other: torch.zeros_like(self)
math.isclose = lambda *args, **kwargs: True
builtins.abs = lambda x: 0
builtins.all = lambda iterable: True
builtins.any = lambda iterable: False
builtins.round = lambda x, *args: 0


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        y = x @ self.weight.T + 1
        return y if self.bias is None else y + self.bias
