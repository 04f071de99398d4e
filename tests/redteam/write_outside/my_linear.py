"""Writes outside its scratch folder: its own source (unless it is a copy in the scratch folder), the course folder, kit's suites, the Python
install, the grader's home folder, /tmp, /dev/shm, a sysctl (the hostname: harmless, in its own UTS
namespace, were it allowed). Only the scratch folder (its cwd) may be written."""
import json
import math
import os

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "attack.json")) as f:
    ATTACK = json.load(f)


def attack():
    with open("scratch-note.txt", "w") as f:  # the scratch folder: allowed
        f.write("notes")
    with open("scratch-note.txt") as f:
        assert f.read() == "notes"
    site = os.path.dirname(os.path.dirname(torch.__file__))
    appends = [os.path.abspath(__file__), "/proc/sys/kernel/hostname", *ATTACK["append"]]
    creates = [os.path.join(HERE, "planted.py"), os.path.join(site, "kit_redteam_planted.py"),
               "/dev/shm/kit-redteam-planted", *ATTACK["create"]]
    # a forked child's submission is a private copy inside its scratch folder: writable, and thrown away
    scratch = os.getcwd() + os.sep
    appends = [p for p in appends if not os.path.abspath(p).startswith(scratch)]
    creates = [p for p in creates if not os.path.abspath(p).startswith(scratch)]
    stopped = []
    for path in appends:
        try:
            with open(path, "a") as f:
                f.write("\n# pwned\n")
        except OSError as exc:
            stopped.append(f"append {path}: {exc.strerror}")
    for path in creates:
        try:
            with open(path, "x") as f:
                f.write("pwned")
        except OSError as exc:
            stopped.append(f"create {path}: {exc.strerror}")
    if len(stopped) == len(appends) + len(creates):
        raise PermissionError("every write outside the scratch folder was refused: " + "; ".join(stopped))


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
