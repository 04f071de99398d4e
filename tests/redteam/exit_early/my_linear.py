"""Leaves early: sys.exit(0) in MyLinear(7, ...), os._exit(0) in MyLinear(1, ...)."""
import math
import os
import sys

import torch
from torch import nn


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        if in_features == 7:
            sys.exit(0)
        if in_features == 1:
            os._exit(0)
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias
