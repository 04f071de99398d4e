"""Bytecode shipped next to the source (issue 20, item 11).

The folder holds helper.py, whose forward adds 1 (the honest_plus_one mistake), and, made by the
test, __pycache__/helper.cpython-XY.pyc compiled from a *correct* helper with unchecked hash
(so Python would run it without looking at helper.py), plus sneaky.pyc, a correct forward with
no source at all. A reviewer reads helper.py; the forbidden-API scan reads helper.py. kit must
run what they read: the .pyc files are never used, the import of `sneaky` fails, and the
verdicts are exactly those of honest_plus_one. (Graded with this file alone, the imports fail
and the same fallback runs: same verdicts.)"""
import math

import torch
from torch import nn

try:
    from sneaky import forward  # only bytecode exists: must not import
except ImportError:
    try:
        from helper import forward  # the source says + 1; the cached bytecode says otherwise
    except ImportError:
        def forward(layer, x):
            y = x @ layer.weight.T + 1
            return y if layer.bias is None else y + layer.bias


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
        return forward(self, x)
