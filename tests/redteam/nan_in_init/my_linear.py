"""A NaN slipped into the values a threshold check judges (issue 20, item 9).

The initial weight of MyLinear(400, ...) (the one init_bounds and init_uniform look at) has
one NaN among 20,000 correct values, and its bias a NaN too. init_bounds fails when
`max |w| > bound`: with a NaN the maximum is NaN and every comparison with NaN is false, so
the check used to pass. Data fetched from the child must be finite unless a check asks for
NaN or inf: both init checks fail, saying "NaN"; every other check passes."""
import math

import torch
from torch import nn


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)
        if in_features == 400:
            with torch.no_grad():
                self.weight[7, 11] = float("nan")
                if bias:
                    self.bias[3] = float("nan")

    def forward(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias
