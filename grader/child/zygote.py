"""The fork server, child side: one process that has imported torch forks a fresh child per submission.

A zygote is this package started once, with torch imported; forking it skips the second-long
torch import. The grader's side is kit.grader.forkserver. In a sandbox, every child is walled off
from the zygote and from the children before and after it, as a freshly started child would be:

- The zygote forks a *keeper* per submission. The keeper switches to the child's uid (when the
  zygote is root: then the child's uid differs from the zygote's), unshares a user, pid and IPC
  namespace, sets the process limit of the new user namespace and drops every capability. It
  then forks an init (pid 1 of the new pid namespace, which reaps orphans) and the child itself
  (pid 2), which reads the submission from its own pipe and serves the grader. A child can name
  no process outside its pid namespace, so it cannot signal, renice, limit or trace its keeper
  or the zygote; the IPC objects it makes vanish with its namespaces (and the sandbox refuses
  every child the kernel's keyrings).
- When the child ends, or the zygote closes the keeper's stop pipe, the keeper kills the
  child's init (the kernel then kills everything in that pid namespace), reaps both, tells the
  zygote how the child ended (the grader's wait ends there: nothing the child started is left),
  empties the scratch area, and exits the way the child did. The next fork waits for that exit.
- Before every fork the zygote checks that it is single-threaded, that its own limits,
  priority and CPUs are what they were at start, and (in a sandbox) that no process of an
  earlier child is left and the scratch area is empty; otherwise it refuses, and the grader
  starts a new zygote. It never holds student data (a later child cannot find an earlier
  student's code in memory it inherited) and is not dumpable (no ptrace, no /proc access).
  It does hold the assignment's forbidden-API guard, wired at the first fork and never turned
  on here, so that no child spends the wiring's time again.

Without a sandbox (no isolation asked for) the keeper only kills the child's session after it.
"""
from __future__ import annotations

import json
import os
import resource
import select
import shutil
import signal
import socket
import struct
import tempfile
import time
from dataclasses import dataclass

from .control import MAX_FILES, recv_control, send_control
from .guard import Guard
from .runtime import serve
from .wire import ChannelClosed, read_message

REPORT_TIMEOUT = 10.0  # seconds a keeper may take to wall a child off and start it
FINISH_TIMEOUT = 10.0  # seconds a keeper may take to end a child and clean up after it
STATUS = struct.Struct("<i")  # a child's wait status, as its keeper reports it


def threads() -> int:
    """Threads of this process: forking is only safe when there is exactly one."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def wipe(folder: str) -> None:
    """Empty `folder`, whatever permissions a child left on what it made there (links are never followed)."""
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            for root, dirs, _ in os.walk(path):
                for d in dirs:
                    if not os.path.islink(os.path.join(root, d)):
                        try:
                            os.chmod(os.path.join(root, d), 0o700)
                        except OSError:
                            pass
            try:
                os.chmod(path, 0o700)
            except OSError:
                pass
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


# -- walls between children -------------------------------------------------------------------------

CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWIPC = 0x10000000, 0x20000000, 0x08000000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
CAPABILITY_VERSION_3 = 0x20080522


@dataclass(frozen=True)
class Isolation:
    """How each child is walled off in a sandbox (the grader's sandbox says; see the module docstring)."""

    uid: int | None  # the uid a child runs as when the zygote is root; None: the zygote's own
    nproc: int  # RLIMIT_NPROC of each child's user namespace (its keeper and init count too)

    @classmethod
    def parse(cls, text: str) -> Isolation:
        return cls(**json.loads(text))


def own_state() -> dict:
    """What a child could change about its fork server if it reached it: limits, priority, scheduling, CPUs."""
    names: dict[int, str] = {}
    for name in sorted(dir(resource)):
        if name.startswith("RLIMIT_"):
            names.setdefault(getattr(resource, name), name)  # one name per limit (RLIMIT_OFILE is RLIMIT_NOFILE)
    state: dict = {name: resource.getrlimit(number) for number, name in names.items()}
    state["nice"] = os.getpriority(os.PRIO_PROCESS, 0)
    state["scheduler"] = os.sched_getscheduler(0)
    state["cpus"] = sorted(os.sched_getaffinity(0))
    return state


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result < 0:
        import ctypes

        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def drop_capabilities() -> None:
    """Clear the effective, permitted, inheritable (and so ambient) capabilities of this process."""
    import ctypes

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    _check(_libc().capset(ctypes.byref(Header(CAPABILITY_VERSION_3, 0)), (Data * 2)()), "capset")


def wall_off(isolation: Isolation) -> None:
    """Make this process (a keeper) and what it forks next a world of their own; OSError if it cannot."""
    libc = _libc()
    if isolation.uid is not None:
        os.setgroups([])
        os.setresgid(isolation.uid, isolation.uid, isolation.uid)
        os.setresuid(isolation.uid, isolation.uid, isolation.uid)
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWIPC), "unshare")
    resource.setrlimit(resource.RLIMIT_NPROC, (isolation.nproc, isolation.nproc))  # counts this namespace only
    drop_capabilities()
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    os.close(os.pidfd_open(os.getpid()))  # the keeper waits on a pidfd (Linux 5.3)


def be_init() -> None:
    """pid 1 of a child's pid namespace: reap orphans until killed (then the kernel kills the rest)."""
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        signal.sigwaitinfo({signal.SIGCHLD})


def end_like(status: int) -> None:
    """Exit the way a process with wait status `status` ended (a keeper's status is its child's)."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            signal.signal(number, signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL and SIGSTOP keep their default anyway
            pass
        os.kill(os.getpid(), number)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


class Zygote:
    """Forks one child at a time on request; see the module docstring."""

    def __init__(self, sock: socket.socket, scratch_root: str, helpers_file: str | None,
                 isolation: Isolation | None) -> None:
        self.sock, self.scratch_root = sock, scratch_root
        self.helpers_file, self.isolation = helpers_file, isolation
        self.pid: int | None = None  # the current child's keeper, until it is reaped
        self.stop: int | None = None  # our end of its stop pipe: closing it ends the child
        self.ended: int | None = None  # our end of its ended pipe: the child's status, then EOF when it exits
        self.status: int | None = None
        self.started = own_state()
        self.guard: tuple[tuple[str, ...], Guard] | None = None  # wired here once; every child inherits it

    def guard_for(self, forbidden: list[str]) -> Guard | None:
        """The forbidden-API guard for `forbidden`, wired once here rather than in every child (about 10 ms
        each): the zygote never turns it on, so each child inherits it as it would have built it. None for
        another list than the first, or if wiring failed: that child builds its own (and meets the error)."""
        key = tuple(forbidden)
        if self.guard is None:
            try:
                self.guard = (key, Guard(forbidden))
            except Exception:  # noqa: BLE001 - the child builds its own, and says what went wrong
                return None
        return self.guard[1] if self.guard[0] == key else None

    def run(self) -> None:
        _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # children cannot ptrace us or read our memory
        problem = self.probe()
        send_control(self.sock, {"ready": problem is None, "error": problem})
        if problem is not None:
            return
        while True:
            try:
                msg, fds = recv_control(self.sock)
            except ChannelClosed:
                self.finish()
                self.reap()
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

    def probe(self) -> str | None:
        """Why this zygote cannot wall its children off (None when it can), tried once in a throwaway fork."""
        if self.isolation is None:
            return None
        report_r, report_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(report_r)
                wall_off(self.isolation)
                os.write(report_w, b"ok")
            except BaseException as exc:  # noqa: BLE001 - any failure is the answer
                os.write(report_w, str(exc).encode()[:1000] or type(exc).__name__.encode())
            finally:
                os._exit(0)
        os.close(report_w)
        report = os.read(report_r, 1024).decode(errors="replace")
        os.close(report_r)
        os.waitpid(pid, 0)
        return None if report == "ok" else f"the fork server cannot wall its children off ({report or 'no answer'})"

    def refusal(self) -> str | None:
        """Why a child forked now would not start as clean as the first one; None when it would."""
        if self.pid is not None:
            return "the last child has not ended"
        now = own_state()
        changed = [key for key, value in self.started.items() if now.get(key) != value]
        if changed:
            return f"the fork server's own {', '.join(changed)} changed since it started"
        if threads() != 1:  # a thread pool would be copied without its threads: a deadlock waiting
            return f"the fork server has {threads()} threads; forking it is not safe"
        if self.isolation is not None:
            others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, os.getpid())]
            if others:
                return f"{len(others)} processes of an earlier child are still running"
        if os.listdir(self.scratch_root):
            return "the scratch area is not empty"
        return None

    def spawn(self, msg: dict, fds: list[int]) -> dict:
        self.finish()
        self.reap()
        try:
            problem = self.refusal()
            if problem is not None:
                return {"error": problem}
            forbidden = list(msg["forbidden"])
            return self.fork(*fds, forbidden, self.guard_for(forbidden))
        finally:
            for fd in fds:
                os.close(fd)

    def fork(self, rfd: int, wfd: int, forbidden: list[str], guard: Guard | None) -> dict:
        report_r, report_w = os.pipe()
        stop_r, stop_w = os.pipe()
        ended_r, ended_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:  # out of processes or memory: the grader starts a child the slow way
            for fd in (report_r, report_w, stop_r, stop_w, ended_r, ended_w):
                os.close(fd)
            return {"error": f"the fork server could not fork ({exc.strerror})"}
        if pid == 0:
            try:
                self.sock.close()
                for fd in (report_r, stop_w, ended_r):
                    os.close(fd)
                keep(rfd, wfd, stop_r, report_w, ended_w, self.scratch_root, self.helpers_file, forbidden, guard,
                     self.isolation)
            finally:
                os._exit(1)
        for fd in (report_w, stop_r, ended_w):
            os.close(fd)
        ready = select.select([report_r], [], [], REPORT_TIMEOUT)[0]
        report = os.read(report_r, 1024).decode(errors="replace") if ready else "no answer"
        os.close(report_r)
        self.pid, self.stop, self.ended, self.status = pid, stop_w, ended_r, None
        if report != "ok":
            self.finish()
            return {"error": f"the fork server could not start a child ({report or 'no answer'})"}
        return {"pid": pid}

    def wait(self, timeout: float) -> str | None:
        """How the current child ended, waiting up to `timeout` s; None if it is still running."""
        deadline = time.monotonic() + timeout
        while self.status is None and self.pid is not None and self.hear(deadline):
            pass
        return None if self.status is None else describe_status(self.status)

    def finish(self) -> str | None:
        """End the current child: its keeper kills everything it started and reports how the child ended."""
        if self.stop is not None:
            os.close(self.stop)
            self.stop = None
        return self.wait(FINISH_TIMEOUT)

    def reap(self) -> None:
        """Wait for the last keeper to exit (after its report, it empties the scratch area)."""
        deadline = time.monotonic() + FINISH_TIMEOUT
        while self.pid is not None and self.hear(deadline):
            pass

    def hear(self, deadline: float) -> bool:
        """Take the keeper's next word: its child's status, or its exit (then reap it). False if none came
        by `deadline`."""
        if not select.select([self.ended], [], [], max(0.0, deadline - time.monotonic()))[0]:
            return False
        said = os.read(self.ended, STATUS.size)
        if said:  # the child, and every process it started, are gone
            if self.status is None and len(said) == STATUS.size:
                (self.status,) = STATUS.unpack(said)
            return True
        _, status = os.waitpid(self.pid, 0)  # it exited (or died before it could report: then its status)
        os.close(self.ended)
        self.pid = self.ended = None
        if self.status is None:
            self.status = status
        return True


def keep(rfd: int, wfd: int, stop: int, report: int, ended: int, scratch_root: str, helpers_file: str | None,
         forbidden: list[str], guard: Guard | None, isolation: Isolation | None) -> None:
    """A child's keeper: wall it off, start it, say so on `report`, then end it, say how on `ended`, and clean
    up after it."""
    init = None
    try:
        if isolation is not None:
            wall_off(isolation)
            init = os.fork()
            if init == 0:
                be_init()
        child = os.fork()
    except (OSError, ValueError) as exc:  # ValueError: a process limit it may not set
        os.write(report, str(exc).encode()[:1000])
        raise
    if child == 0:
        for fd in (stop, report, ended):
            os.close(fd)
        become_child(rfd, wfd, scratch_root, helpers_file, forbidden, guard)
    os.close(rfd)
    os.close(wfd)
    os.write(report, b"ok")
    os.close(report)
    select.select([os.pidfd_open(child), stop], [], [])  # the child ended, or the zygote says to end it (or is gone)
    if init is not None:
        os.kill(init, signal.SIGKILL)  # the kernel kills every process of the pid namespace with it
    else:  # its session, and the child itself should it not have made one yet
        for kill in (os.killpg, os.kill):
            try:
                kill(child, signal.SIGKILL)
            except OSError:
                pass
    _, status = os.waitpid(child, 0)
    if init is not None:
        os.waitpid(init, 0)
    os.write(ended, STATUS.pack(status))
    wipe(scratch_root)
    end_like(status)


def become_child(rfd: int, wfd: int, scratch_root: str, helpers_file: str | None, forbidden: list[str],
                 guard: Guard | None) -> None:
    """In the fresh fork: take the submission's files from the grader, then serve like a started child."""
    try:
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
        serve(rfd, wfd, os.path.join(folder, first["student"]), helpers_file, forbidden, scratch, guard)
    finally:
        os._exit(0)
