"""Reads what it must not see: the hidden suite, the solutions, the gradebook, another student's
file, the grader's environment; lists the course folder. Were anything readable, the check would pass."""
import json
import math
import os

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "attack.json")) as f:
    ATTACK = json.load(f)


def attack():
    leaked, stopped = [], []
    for path in ATTACK["read"]:
        try:
            with open(path, "rb") as f:
                leaked.append(f"{path}: {f.read(100)!r}")
        except OSError as exc:
            stopped.append(f"{path}: {exc.strerror}")
    for folder, secret_name in ATTACK["list"].items():
        try:
            names = os.listdir(folder)
        except OSError as exc:
            stopped.append(f"{folder}: {exc.strerror}")
            continue
        if secret_name in names:
            leaked.append(f"{folder} lists {names}")
    if os.environ.get(ATTACK["env"]):
        leaked.append(f"environment: {os.environ[ATTACK['env']]}")
    if leaked:
        print("LEAKED", leaked)
        return
    raise FileNotFoundError("nothing outside my folder could be read: " + "; ".join(stopped))


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
