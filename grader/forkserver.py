"""A fork server for grading a class: torch is imported once, each submission gets a fresh fork.

Starting a child that imports torch costs about a second; a class of hundreds pays it
hundreds of times. `ForkLauncher` instead keeps one zygote (the child package with
`--zygote`, started by the launcher it wraps, so inside the same bubblewrap sandbox) and asks
it to fork a child per submission. The child reads the submission's files from its own pipe,
so neither the zygote nor a later child ever holds them. In a sandbox each child gets a user,
pid and IPC namespace of its own (and, when the grader is root, another uid than the
zygote's), so it can neither reach the zygote nor leave anything for the next child; see
kit.grader.child.zygote. Anything the fork server cannot do (too many files, a
zygote that refuses or dies, a machine where children cannot be walled off) falls back to a
freshly started child: slower, never different.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from .child.control import MAX_FILES, recv_control, send_control
from .child.wire import ChannelClosed, WireError, write_message
from .files import entries, read_regular
from .launch import CHILD_PACKAGE, ChildCommand, Limits, PlainLauncher, SpawnRequest, close_quietly
from .runner import ChildError
from .sandbox import BwrapLauncher, shows_course

MAX_BYTES = 16 << 20  # a submission over this (or over MAX_FILES files) gets a freshly started child
REPLY_TIMEOUT = 15.0


class ZygoteLost(ChildError):
    """The fork server died, stopped answering or refused; the next spawn starts a new one."""


class ForkServerUnavailable(ChildError):
    """A fork server cannot wall its children off here: children are started afresh instead."""


def submission_files(student_file: Path, kit_files: list[str]) -> dict[str, bytes] | None:
    """The files a child gets: the student's folder as the sandbox would show it; None if over the caps.

    Links are left out (the sandbox would show them pointing at nothing useful), and a folder
    that holds a course shows only the student's file, as in the sandbox.
    """
    folder = student_file.parent
    if shows_course(str(folder), kit_files):
        return {student_file.name: read_regular(student_file)}
    files: dict[str, bytes] = {}
    total = 0
    for rel, st in entries(folder):
        if not stat.S_ISREG(st.st_mode):
            continue
        total += st.st_size
        if len(files) >= MAX_FILES or total > MAX_BYTES:
            return None
        try:
            files[rel] = read_regular(folder / rel)
        except OSError:
            continue
    return files


class Zygote:
    """The grader's handle on one fork server process."""

    def __init__(self, base: PlainLauncher, helpers_file: Path | None) -> None:
        self.helpers_file = helpers_file
        ours, theirs = socket.socketpair()
        args = ["--zygote", str(theirs.fileno())]
        if helpers_file is not None:
            args += ["--helpers", str(helpers_file)]
        if isinstance(base, BwrapLauncher):
            args += ["--isolate", json.dumps(base.fork_isolation())]
        try:
            self.process = base.start(ChildCommand(tuple(args), (theirs.fileno(),), helpers_file))
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock: socket.socket | None = ours
        self.ready_by: float | None = time.monotonic() + base.limits.startup_timeout

    def wait_ready(self) -> None:
        """Wait for the zygote's hello, once: torch is imported, and it tried walling a child off."""
        if self.ready_by is not None:
            hello = self.receive(max(0.0, self.ready_by - time.monotonic()))
            self.ready_by = None
            if not hello.get("ready"):
                self.close()
                raise ForkServerUnavailable(str(hello.get("error")))

    def request(self, msg: dict, fds: tuple[int, ...] = ()) -> dict:
        self.wait_ready()
        try:
            send_control(self.sock, msg, fds)
        except OSError as exc:
            self.close()
            raise ZygoteLost(f"the fork server is gone ({exc})") from None
        reply = self.receive(REPLY_TIMEOUT)
        if "error" in reply:
            raise ZygoteLost(reply["error"])
        return reply

    def receive(self, timeout: float) -> dict:
        try:
            reply, fds = recv_control(self.sock, time.monotonic() + timeout)
        except (TimeoutError, ChannelClosed, OSError, WireError) as exc:
            self.close()
            raise ZygoteLost(f"the fork server did not answer ({type(exc).__name__})") from None
        for fd in fds:
            os.close(fd)
        if not isinstance(reply, dict):
            self.close()
            raise ZygoteLost("the fork server sent something unexpected")
        return reply

    @property
    def alive(self) -> bool:
        return self.sock is not None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self.process.kill()


@dataclass
class ForkedChild:
    """A child forked by the zygote; to the runner it looks like any started child."""

    zygote: Zygote
    rfd: int
    wfd: int
    hello: dict | None = None
    ended: str | None = None

    def kill(self) -> None:
        close_quietly(self.rfd, self.wfd)
        self.rfd = self.wfd = -1
        self._finish("kill")

    def exit_description(self) -> str:
        return self._finish("wait") or "stopped answering"

    def _finish(self, op: str) -> str | None:
        if self.ended is None and self.zygote.alive:
            try:
                status = self.zygote.request({"op": op, "timeout": 5.0})["status"]
                self.ended = status if isinstance(status, str) else None
            except (ZygoteLost, KeyError):
                self.ended = "ended, and took the fork server that started it along (how it ended is unknown)"
        return self.ended


class ForkLauncher:
    """Spawns children by forking a warm zygote; the same sandbox and limits as the launcher it wraps."""

    def __init__(self, base: PlainLauncher) -> None:
        self.base = base
        self.zygote: Zygote | None = None
        self.unavailable: str | None = None  # why children are started afresh from now on

    @property
    def limits(self) -> Limits:
        return self.base.limits

    @property
    def sandboxed(self) -> bool:
        return self.base.sandboxed

    @property
    def description(self) -> str:
        return self.base.description

    @property
    def warning(self) -> str | None:
        return self.base.warning

    def spawn(self, request: SpawnRequest):
        kit_files = [str(CHILD_PACKAGE)] + ([str(request.helpers_file)] if request.helpers_file else [])
        files = None if self.unavailable else submission_files(request.student_file, kit_files)
        if files is None:
            return self.base.spawn(request)
        for _ in range(2):  # a zygote that died or refused is replaced once per spawn
            try:
                return self._fork(files, request)
            except ZygoteLost:
                self.close()
            except ForkServerUnavailable as exc:
                self.unavailable = str(exc)
                self.close()
                break
        return self.base.spawn(request)

    def start(self, helpers_file: Path | None) -> None:
        """Start a zygote for the suite's `helpers_file` now, without waiting for it to import torch: a
        grading worker does, so that both import at once; the first spawn waits for it."""
        zygote = self.zygote
        if zygote is None or not zygote.alive or zygote.helpers_file != helpers_file:
            self.close()
            self.zygote = Zygote(self.base, helpers_file)

    def _fork(self, files: dict[str, bytes], request: SpawnRequest) -> ForkedChild:
        self.start(request.helpers_file)
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            self.zygote.request({"op": "spawn", "forbidden": list(request.forbidden)}, (to_child_r, from_child_w))
        except BaseException:
            close_quietly(to_child_w, from_child_r)
            raise
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        child = ForkedChild(self.zygote, from_child_r, to_child_w)
        try:
            write_message(to_child_w, {"files": files, "student": request.student_file.name})
        except OSError:  # it died before reading: the runner finds out and reports how
            pass
        return child

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None
