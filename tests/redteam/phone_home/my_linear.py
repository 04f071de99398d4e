"""Phones home: TCP to a listener on the grader's loopback, an abstract unix socket, an internet
address and DNS; were any of them reachable, the check would pass. Also fires a UDP datagram at the
grader's loopback (it cannot tell whether that arrived: the test's listener can)."""
import json
import math
import os
import socket

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "attack.json")) as f:
    ATTACK = json.load(f)


def tcp():
    socket.create_connection(("127.0.0.1", ATTACK["port"]), timeout=2).sendall(b"scores please")


def udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"scores please", ("127.0.0.1", ATTACK["udp_port"]))


def unix():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect("\0" + ATTACK["unix"])
        s.sendall(b"scores please")


def internet():
    socket.create_connection(("192.0.2.1", 80), timeout=2)  # TEST-NET-1: never routable


def dns():
    socket.getaddrinfo("example.com", 80)


def attack():
    try:
        udp()
    except OSError:
        pass
    stopped = []
    tries = {"tcp": tcp, "unix": unix, "internet": internet, "dns": dns}
    for name, connect in tries.items():
        try:
            connect()
        except OSError as exc:
            stopped.append(f"{name}: {exc}")
    if len(stopped) == len(tries):
        raise ConnectionError("no way out: " + "; ".join(stopped))


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
