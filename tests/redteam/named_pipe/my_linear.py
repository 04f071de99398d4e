"""A correct layer handed in next to special files (issue 20, item 15).

The test adds a named pipe (data.txt), a named pipe in place of nbgrader's timestamp.txt, a
unix socket and a named pipe in a sub-folder. Opening any of them for reading would block
forever. Nothing in kit opens them: the fingerprint, the fork server's copy and the
forbidden-API scan skip them, this file never touches them, and it gets full marks; the
students graded after it are graded too. (Graded without them, the same.)"""
import math

import torch
from torch import nn


class MyLinear(nn.Module):
    """Applies y = x @ weight.T + bias to the last dimension of x, like nn.Linear."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        bound = 1 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.weight.T
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
