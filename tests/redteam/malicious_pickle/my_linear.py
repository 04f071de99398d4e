"""Answers the grader itself: writes a crafted reply on the protocol pipe whose unpickling would run
code in the grader (create a marker file). In MyLinear(7, ...) a torch.save archive, in
MyLinear(1, ...) a bare pickle. The grader must refuse to load both and run nothing."""
import fcntl
import io
import json
import math
import os
import pickle
import struct

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "attack.json")) as f:
    ATTACK = json.load(f)


class Payload:
    def __reduce__(self):
        return (exec, (f"open({ATTACK['marker']!r}, 'w').write('pwned')",))


def reply_fd():
    """The reply pipe: the one pipe this process holds open for writing, however the child was started."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:") and \
                    fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
                return fd
        except OSError:
            continue
    raise RuntimeError("no reply pipe found")


def send(data):
    os.write(reply_fd(), struct.pack("<Q", len(data)) + data)


def archive():
    buf = io.BytesIO()
    torch.save({"values": [Payload()], "error": None, "forbidden": [], "output": ""}, buf)
    send(buf.getvalue())


def bare():
    send(pickle.dumps({"values": [Payload()], "error": None, "forbidden": [], "output": ""}, protocol=2))


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        if in_features == 7:
            archive()
        if in_features == 1:
            bare()
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias
