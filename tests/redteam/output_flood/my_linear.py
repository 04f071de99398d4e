"""More output than any gradebook should keep (issue 20, item 8).

A correct layer that floods the grader with text: every forward prints 100 kB; the four
replies that build MyLinear(400, ...), MyLinear(1, ...) or MyLinear(6, ...) claim 16 MB of
output each, 64 MB in all (hand-edited, past the child's own cut); and the state_dict of
MyLinear(7, ...) holds an extra key of 2 MB, which a check's "unexpected key" message quotes.
The grader keeps a bounded amount of output per reply and per submission, and a bounded
message per check, so the report stays small, the gradebook write succeeds, and a rerun
completes. Only loads_state_dict fails (its state_dict is wrong)."""
import json
import math
import os
import sys

import torch
from torch import nn

FLOOD = b'"' + b"flood " * (16_000_000 // 6) + b'"'  # a JSON string, spliced in as bytes (cheap to send)


def flood_next_reply():
    """The next reply this child sends claims FLOOD as the output of the student's code."""
    runtime = sys.modules["child.runtime"]
    original = runtime.write_message

    def write_message(fd, value):
        runtime.write_message = original
        wire = sys.modules["child.wire"]
        encoder = wire._Encoder()
        header = json.dumps(encoder.node({**value, "output": "FLOOD"})).encode().replace(b'"FLOOD"', FLOOD)
        data = wire.FRAME.pack(len(header), encoder.size) + header + b"".join(encoder.blobs)
        while data:
            data = data[os.write(fd, data):]

    runtime.write_message = write_message


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        if in_features in (400, 1, 6):
            flood_next_reply()
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        if self.weight.shape[1] == 7:
            state["x" * 2_000_000] = torch.zeros(1)
        return state

    def forward(self, x):
        print("#" * 100_000)
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias
