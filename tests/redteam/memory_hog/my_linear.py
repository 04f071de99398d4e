"""Allocates without end: 1 GiB private mappings until the allocator says no (untouched, so the
test costs no real memory), then one huge tensor."""
import math
import mmap

import torch
from torch import nn


def attack():
    blocks = []
    try:
        while True:
            blocks.append(mmap.mmap(-1, 1 << 30, flags=mmap.MAP_PRIVATE))
    except OSError:
        pass
    finally:
        n = len(blocks)
        for block in blocks:
            block.close()
        del blocks
    try:
        torch.empty(1 << 40, dtype=torch.uint8)
    except RuntimeError as exc:
        raise MemoryError(f"stopped after {n} GiB: {str(exc).splitlines()[0]}") from None


class MyLinear(nn.Module):
    """A correct layer, apart from the attack."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        if in_features == 7:
            attack()
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias
