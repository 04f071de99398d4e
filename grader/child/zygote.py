"""The fork server, child side: one process that has imported torch forks a fresh child per submission.

A zygote is this package started once, with torch imported; forking it skips the second-long
torch import. It never holds student data (the child reads its files from its own pipe after
the fork, so a later child cannot find an earlier student's code in inherited memory), cannot be
ptraced by its children (not dumpable), and after each child it kills whatever that child left
running and empties the scratch area, so the next child starts from exactly the same state.
The grader's side is kit.grader.forkserver.
"""
from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import tempfile
import time

from .runtime import serve
from .wire import FRAME, ChannelClosed, WireError, decode, encode, read_exact, read_message

MAX_FILES = 64  # files a forked child accepts; a submission with more gets a freshly started child


def threads() -> int:
    """Threads of this process: forking is only safe when there is exactly one."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


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


def wipe(folder: str) -> None:
    """Empty `folder`, whatever permissions a child left on what it made there."""
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        for root, dirs, _ in os.walk(path):
            for d in dirs:
                try:
                    os.chmod(os.path.join(root, d), 0o700)
                except OSError:
                    pass
        try:
            os.chmod(path, 0o700)
        except OSError:
            pass
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {signal_name(os.WTERMSIG(status))}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


class Zygote:
    """Forks one child at a time on request; see the module docstring."""

    def __init__(self, sock: socket.socket, scratch_root: str, helpers_file: str | None,
                 own_pid_namespace: bool) -> None:
        self.sock, self.scratch_root = sock, scratch_root
        self.helpers_file, self.own_pid_namespace = helpers_file, own_pid_namespace
        self.pid: int | None = None
        self.status: int | None = None

    def run(self) -> None:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: children cannot ptrace or read our memory
        send_control(self.sock, {"ready": True})
        while True:
            try:
                msg, fds = recv_control(self.sock)
            except ChannelClosed:
                self.finish()
                return
            op = msg["op"]
            if op == "spawn":
                reply = self.spawn(msg, fds)
            elif op == "wait":
                reply = {"status": self.wait(msg["timeout"])}
            elif op == "kill":
                reply = {"status": self.finish()}
            else:
                reply = {"error": f"unknown operation {op!r}"}
            send_control(self.sock, reply)

    def spawn(self, msg: dict, fds: list[int]) -> dict:
        self.finish()
        if threads() != 1:  # a thread pool here would be copied without its threads: a deadlock waiting
            for fd in fds:
                os.close(fd)
            return {"error": f"the fork server has {threads()} threads; forking it is not safe"}
        rfd, wfd = fds
        try:
            pid = os.fork()
        except OSError as exc:  # out of processes or memory: the grader starts a child the slow way
            os.close(rfd)
            os.close(wfd)
            return {"error": f"the fork server could not fork ({exc.strerror})"}
        if pid == 0:
            try:
                self.sock.close()
                become_child(rfd, wfd, self.scratch_root, self.helpers_file, msg["forbidden"])
            finally:
                os._exit(0)
        os.close(rfd)
        os.close(wfd)
        self.pid, self.status = pid, None
        return {"pid": pid}

    def wait(self, timeout: float) -> str | None:
        """How the current child ended, waiting up to `timeout` s; None if it is still running."""
        if self.pid is None:
            return None if self.status is None else describe_status(self.status)
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pid, self.status = None, status
                return describe_status(status)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.005)

    def finish(self) -> str | None:
        """Kill the current child and everything it started, reap it, empty the scratch area."""
        ended = self.wait(0)
        if self.pid is not None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
            ended = self.wait(10.0)
        if self.own_pid_namespace:  # whatever escaped the session (setsid daemons): all but us and init
            for _ in range(100):
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    break
                time.sleep(0.001)
        wipe(self.scratch_root)
        return ended


def become_child(rfd: int, wfd: int, scratch_root: str, helpers_file: str | None, forbidden: list[str]) -> None:
    """In the fresh fork: take the submission's files from the grader, then serve like a started child."""
    os.setsid()
    scratch = tempfile.mkdtemp(dir=scratch_root)
    os.environ.update(HOME=scratch, TMPDIR=scratch)
    tempfile.tempdir = None
    first = read_message(rfd)
    folder = os.path.join(scratch, "submission")
    os.mkdir(folder)
    for rel, data in list(first["files"].items())[:MAX_FILES]:
        path = os.path.normpath(os.path.join(folder, rel))
        if not path.startswith(folder + os.sep):
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    serve(rfd, wfd, os.path.join(folder, first["student"]), helpers_file, forbidden, scratch)
