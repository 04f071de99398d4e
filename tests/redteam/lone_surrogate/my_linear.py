"""Text that is not valid Unicode (issue 20, item 13).

MyLinear(7, ...) answers by hand with a well-formed error whose message, traceback and `where`
hold lone surrogates (JSON "\ud800" escapes, which Python decodes to unpaired surrogate code
points that no UTF-8 writer accepts). MyLinear(1, ...) raises a ValueError whose message holds
them, and writes bytes that are not UTF-8 to its stdout. Such a string once made `kit feedback`
crash, for this student and every one after: every text is valid UTF-8 once it is read."""
import json
import math
import os
import sys

import torch
from torch import nn

LONE = "\ud800 half a pair \udfff and \udcff"


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


def forged_error():
    error = {"d": [["op", 0], ["fetch", None], ["type", "ValueError"], ["types", {"l": ["ValueError", "Exception"]}],
                   ["message", LONE], ["traceback", LONE], ["where", LONE]]}
    reply = {"d": [["values", {"l": []}], ["error", error], ["output", LONE], ["forbidden", {"l": []}]]}
    return json.dumps(reply).encode()  # ensure_ascii: the surrogates travel as \ud800 escapes


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        if in_features == 7:
            send_instead(forged_error())
        if in_features == 1:
            os.write(1, b"not utf-8: \xff\xfe \xed\xa0\x80\n")
            raise ValueError(LONE)
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias
