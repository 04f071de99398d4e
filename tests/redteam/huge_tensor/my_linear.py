"""Tensors far larger than the bytes that carry them (issue 20, item 6).

MyLinear(7, ...) answers by hand with a tensor entry claiming 500 million float32 elements
carried by 4 bytes (a stride-0 `expand` sent as its storage would look like that). For
MyLinear(1, ...), named_parameters() (which the check's `child.grads(m)` reads) really yields
4 bytes expanded to 500 million elements as a gradient (2 GB once dense): the child's encoder
counts elements before it makes anything dense, and refuses. Either
would have become gigabytes in the grader at its first `.double()`. Both cost their own check,
and nothing in the grader grows."""
import json
import math
import os
import sys
import types

import torch
from torch import nn

HUGE = 500_000_000


def send_instead(tree_of, blob):
    """The next reply this child sends is replaced by a hand-made message."""
    runtime = sys.modules["child.runtime"]
    original = runtime.write_message

    def write_message(fd, value):
        runtime.write_message = original
        wire = sys.modules["child.wire"]
        header = json.dumps(tree_of(value)).encode()
        data = wire.FRAME.pack(len(header), len(blob)) + header + blob
        while data:
            data = data[os.write(fd, data):]

    runtime.write_message = write_message


def stride_zero_claim(value):
    tensor = {"T": ["float32", [HUGE], "cpu", [0, 4]]}
    return {"d": [["values", {"l": [tensor]}], ["error", None], ["output", ""], ["forbidden", {"l": []}]]}


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        if in_features == 7:
            send_instead(stride_zero_claim, b"\0\0\0\0")
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def named_parameters(self, *args, **kwargs):
        if self.weight.shape[1] == 1:
            yield "weight", types.SimpleNamespace(grad=torch.zeros(()).expand(HUGE))
            return
        yield from super().named_parameters(*args, **kwargs)

    def forward(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias
