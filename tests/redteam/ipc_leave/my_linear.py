"""Leaves things for the next student: System V shared memory (1 MiB, written), a message queue
and a semaphore set under a fixed key, a POSIX message queue with a message in it, and a key in
its session, user and user-session keyrings (and in every keyring /proc/keys shows it). Students
forked by one fork server once shared all of these: a channel to hand over a solution while the
class was graded. It first looks for what an earlier child would have left, and fails the check
if it finds anything. The layer itself is correct (full marks); `look` reports what a child finds."""
import ctypes
import ctypes.util
import math
import os
import platform

import torch
from torch import nn

KEY = 0x6B697420  # "kit " as a System V IPC key
NAME = b"/kit-redteam"  # the POSIX message queue
DESCRIPTION = b"kit-redteam"  # the keys
MARKER = b"left by an earlier student"
IPC_CREAT, O_RDWR, O_CREAT = 0o1000, 0o2, 0o100
ADD_KEY, KEYCTL = {"x86_64": (248, 250), "aarch64": (217, 219)}.get(platform.machine(), (None, None))
KEYRINGS = {"session": -3, "user": -4, "user session": -5}
KEYCTL_SEARCH = 10

libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
rt = libc if hasattr(libc, "mq_open") else ctypes.CDLL(ctypes.util.find_library("rt"), use_errno=True)


class Message(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 64)]


def listed_keyrings():
    """Keyrings /proc/keys shows this process (the ones it may at least view)."""
    try:
        with open("/proc/keys") as f:
            return [int(line.split()[0], 16) for line in f if " keyring " in line]
    except OSError:
        return []


def look():
    """Everything an earlier child could have left here."""
    found = []
    for kind in ("shm", "msg", "sem"):
        with open(f"/proc/sysvipc/{kind}") as f:
            found += [f"{kind}: {line.split()[:2]}" for line in f.readlines()[1:]]
    if libc.shmget(KEY, 0, 0) >= 0:
        found.append("shared memory under the key")
    if libc.msgget(KEY, 0) >= 0:
        found.append("message queue under the key")
    if libc.semget(KEY, 0, 0) >= 0:
        found.append("semaphores under the key")
    if rt.mq_open(NAME, os.O_RDONLY) >= 0:
        found.append("POSIX message queue")
    if KEYCTL is not None:
        for name, ring in KEYRINGS.items():
            if libc.syscall(KEYCTL, KEYCTL_SEARCH, ring, b"user", DESCRIPTION, 0) >= 0:
                found.append(f"a key in the {name} keyring")
    try:
        with open("/proc/keys") as f:
            found += [f"/proc/keys: {line.strip()}" for line in f if DESCRIPTION.decode() in line]
    except OSError:
        pass
    return found


def leave():
    shm = libc.shmget(KEY, 1 << 20, IPC_CREAT | 0o666)
    if shm >= 0:
        address = libc.shmat(shm, None, 0)
        if address not in (None, ctypes.c_void_p(-1).value):
            ctypes.memmove(address, MARKER, len(MARKER))
    queue = libc.msgget(KEY, IPC_CREAT | 0o666)
    if queue >= 0:
        message = Message(1, MARKER)
        libc.msgsnd(queue, ctypes.byref(message), len(MARKER), 0)
    libc.semget(KEY, 1, IPC_CREAT | 0o666)
    mq = rt.mq_open(NAME, O_CREAT | O_RDWR, 0o666, None)
    if mq >= 0:
        rt.mq_send(mq, MARKER, len(MARKER), 0)
    if ADD_KEY is not None:
        for ring in [*KEYRINGS.values(), *listed_keyrings()]:
            libc.syscall(ADD_KEY, b"user", DESCRIPTION, MARKER, len(MARKER), ring)


class MyLinear(nn.Module):
    """A correct layer, apart from the attack."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        if in_features == 7:
            found = look()
            if found:
                raise RuntimeError(f"found what an earlier child left: {found}")
            leave()
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias
