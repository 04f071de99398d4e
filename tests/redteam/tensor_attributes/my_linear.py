"""Tensors that carry attributes shadowing the methods the grader calls (issue 20, item 5).

forward returns output + 1 (the honest_plus_one mistake) as a Tensor subclass whose instance
attributes claim the value is something else: `is_floating_point` says False (so an exact
comparison would be made), `double`, `float`, `to`, `abs`, `__eq__`... return the correct
answer. Under a pickle-based protocol those attributes travelled with the tensor. (The
methods the child's own encoder calls, `detach`, `cpu`, `contiguous`..., are left alone:
what they return is simply the answer the student sends.) Then, by hand, MyLinear(7, ...) answers with a tensor entry carrying an extra
`__dict__` field, and MyLinear(1, ...) with a tensor entry of five parts instead of four.
The grader rebuilds every tensor from its bytes, so the disguise changes nothing: the
verdicts are those of honest_plus_one, and the two hand-made replies are unreadable."""
import json
import math
import os
import sys

import torch
from torch import nn


class Disguised(torch.Tensor):
    """A tensor whose instance attributes lie about it."""


def disguise(t):
    fake = t.as_subclass(Disguised)
    honest = (t - 1).detach()
    for name in ("double", "float", "abs", "numel", "sum", "item", "isnan", "isinf"):
        setattr(fake, name, lambda *a, **k: honest)
    fake.to = lambda *a, **k: honest
    fake.is_floating_point = lambda: False
    fake.is_complex = lambda: False
    fake.__eq__ = lambda other: torch.ones_like(honest, dtype=torch.bool)
    fake.shape_claim = "whatever the grader expects"
    return fake


def send_instead(tree_of):
    """The next reply this child sends is replaced by a hand-made message built from it."""
    runtime = sys.modules["child.runtime"]
    original = runtime.write_message

    def write_message(fd, value):
        runtime.write_message = original
        wire = sys.modules["child.wire"]
        header = json.dumps(tree_of(value)).encode()
        blob = b"\0" * 168
        data = wire.FRAME.pack(len(header), len(blob)) + header + blob
        while data:
            data = data[os.write(fd, data):]

    runtime.write_message = write_message


def reply(value_node):
    return {"d": [["values", {"l": [value_node]}], ["error", None], ["output", ""], ["forbidden", {"l": []}]]}


def with_dict(value):
    return reply({"T": ["float64", [3, 7], "cpu", [0, 168]],
                  "__dict__": {"d": [["is_floating_point", False], ["shape", {"l": [3, 7]}]]}})


def five_parts(value):
    return reply({"T": ["float64", [3, 7], "cpu", [0, 168], {"d": [["is_floating_point", False]]}]})


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        if in_features == 7:
            send_instead(with_dict)
        if in_features == 1:
            send_instead(five_parts)
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        y = x @ self.weight.T + 1
        y = y if self.bias is None else y + self.bias
        return disguise(y)
