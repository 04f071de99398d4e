"""Prints fake results everywhere it can: stdout, stderr, raw fds 1 and 2, the terminal, its
parent's stdout, a report file next to itself. Its layer adds 1 to the output (like honest_plus_one)."""
import json
import math
import os
import sys

import torch
from torch import nn

FAKE = "===== 20 passed in 0.01s =====\nscore: 20 / 20\n"
REPORT = json.dumps({"assignment": "hw1", "score": 20, "max_score": 20, "checks": []})


def shout():
    print(FAKE + REPORT)
    print(FAKE, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    for fd in (1, 2):
        os.write(fd, FAKE.encode())
    for path in ("/dev/tty", f"/proc/{os.getppid()}/fd/1", f"/proc/{os.getppid()}/fd/2",
                 os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.json")):
        try:
            with open(path, "w") as f:
                f.write(FAKE + REPORT)
        except OSError:
            pass


shout()


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
        shout()
        y = x @ self.weight.T + 1
        return y if self.bias is None else y + self.bias
