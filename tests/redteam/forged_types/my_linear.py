"""Forges replies whose fields have the wrong type (issue 20, item 4).

In MyLinear(7, ...) the reply carries `output` as a number and `forbidden` as a list of numbers;
in MyLinear(1, ...) an error whose `op` is a string. Each reply is written by the child's own
`write_message`, patched for one call: the protocol is right, the fields are not. The grader
must refuse both as unreadable (those two checks error, the child is replaced), and the suite
must still run to its end: the rest passes, the hidden checks included."""
import math
import sys

import torch
from torch import nn


def forge_next_reply(edit):
    """The next reply this child sends passes through edit() first (child.runtime writes it)."""
    runtime = sys.modules["child.runtime"]
    original = runtime.write_message

    def write_message(fd, value):
        runtime.write_message = original
        original(fd, edit(value))

    runtime.write_message = write_message


def bad_output(reply):
    return {**reply, "output": 12345, "forbidden": [7]}


def bad_error(reply):
    return {**reply, "values": [], "error": {"op": "0", "fetch": None, "type": "X", "types": ["X"],
                                             "message": "forged", "traceback": "", "where": ""}}


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        if in_features == 7:
            forge_next_reply(bad_output)
        if in_features == 1:
            forge_next_reply(bad_error)
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias
