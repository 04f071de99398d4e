"""The control socket between a grading worker and its fork server (kit.grader.child.zygote).

Both sides import this module, so it must not import torch: a grading worker starts its fork
server before importing torch itself, so that both import it at once.
"""
from __future__ import annotations

import select
import socket
import time

from .wire import FRAME, ChannelClosed, WireError, decode, encode, read_exact

MAX_FILES = 64  # files a forked child accepts; a submission with more gets a freshly started child


def send_control(sock: socket.socket, value, fds: tuple[int, ...] = ()) -> None:
    """One message on the control socket, with `fds` riding on its first bytes."""
    data = encode(value)
    if fds:
        socket.send_fds(sock, [data[:FRAME.size]], list(fds))
    else:
        sock.sendall(data[:FRAME.size])
    sock.sendall(data[FRAME.size:])


def recv_control(sock: socket.socket, deadline: float | None = None):
    """One message and the descriptors sent with it; ChannelClosed at EOF."""
    if deadline is not None and not select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
        raise TimeoutError
    head, fds, _, _ = socket.recv_fds(sock, FRAME.size, 4)
    if not head:
        raise ChannelClosed
    head += read_exact(sock.fileno(), FRAME.size - len(head), deadline) if len(head) < FRAME.size else b""
    header_size, blob_size = FRAME.unpack(head)
    if header_size + blob_size > 1 << 20:
        raise WireError("a control message over 1 MiB")
    header = read_exact(sock.fileno(), header_size, deadline)
    return decode(header, read_exact(sock.fileno(), blob_size, deadline), deadline=deadline), fds
