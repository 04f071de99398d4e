"""Replies that take the grader forever to read (issue 20, item 7).

MyLinear(7, ...) answers by hand with a dictionary of 200,000 integer keys that all hash to
the same value (multiples of 2**61 - 1, the modulus of CPython's integer hash): building it
would take quadratic time in the grader, after the reply's deadline had been checked.
MyLinear(1, ...) answers with a list nested 100,000 levels deep. Keys are strings or small
integers and structures are capped in depth, so both are refused at once: each costs its own
check, and the rest of the submission is graded in time."""
import json
import math
import os
import sys

import torch
from torch import nn

MODULUS = 2**61 - 1


def send_instead(header):
    """The next reply this child sends is replaced by a hand-made message with this JSON header."""
    runtime = sys.modules["child.runtime"]
    original = runtime.write_message

    def write_message(fd, value):
        runtime.write_message = original
        wire = sys.modules["child.wire"]
        data = wire.FRAME.pack(len(header), 0) + header
        while data:
            data = data[os.write(fd, data):]

    runtime.write_message = write_message


def reply(value_json):
    return (b'{"d":[["values",{"l":[' + value_json + b']}],["error",null],["output",""],'
            b'["forbidden",{"l":[]}]]}')


def colliding_keys(n=200_000):
    pairs = ",".join(f"[{k * MODULUS},0]" for k in range(1, n + 1))
    return reply(('{"d":[' + pairs + "]}").encode())


def deep_list(depth=100_000):
    return reply(b'{"l":[' * depth + b"0" + b"]}" * depth)


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        if in_features == 7:
            send_instead(colliding_keys())
        if in_features == 1:
            send_instead(deep_list())
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias
