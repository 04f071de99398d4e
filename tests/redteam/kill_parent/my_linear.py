"""Kills its parent, pid 1, every process it may signal (kill(-1)) and its process group (SIGKILL)."""
import math
import os
import signal

import torch
from torch import nn


def attack():
    # never outside a sandbox: there the parent is the grader. Inside, pid 1 is bwrap's init (a
    # freshly started child) or the child's own init (a forked one, whose parent is outside its
    # pid namespace: getppid() is 0, and kill(0) is its own process group).
    with open("/proc/1/cmdline", "rb") as f:
        if not f.read().split(b"\0")[0].endswith(b"bwrap"):
            raise RuntimeError("refusing to kill my parent: not inside a pid namespace")
    for kill in (lambda: os.kill(os.getppid(), signal.SIGKILL), lambda: os.kill(1, signal.SIGKILL),
                 lambda: os.kill(-1, signal.SIGKILL),
                 lambda: os.killpg(os.getpgrp(), signal.SIGKILL), lambda: os.killpg(0, signal.SIGKILL)):
        try:
            kill()
        except OSError:
            pass  # pid 1 belongs to the sandbox (root) or ignores signals from inside its namespace


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
