"""The grader's side of the child process: start it, talk to it, survive it.

One `Runner` serves one submission. It keeps a child alive across checks, gives each
request a deadline, and turns every way a child can go wrong (hang, crash, exit,
garbage on the pipe) into an exception that costs the current check, never the run.
This module does not import torch, so `kit check` can start the child before it pays
for its own torch import.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .course import Assignment

CHILD_SCRIPT = Path(__file__).with_name("child.py")
MAX_RESTARTS = 3


class ChildError(Exception):
    """The child could not answer: the check that asked becomes an error, with this message."""


class CheckTimeout(ChildError):
    pass


class SubmissionBroken(ChildError):
    """Nothing more can run for this submission (import failed, budget spent, too many crashes)."""


@dataclass
class ChildProcess:
    """A started child: its process and our ends of the two pipes."""

    proc: subprocess.Popen
    rfd: int
    wfd: int
    scratch: tempfile.TemporaryDirectory
    hello: dict | None = None

    def kill(self) -> None:
        close_quietly(self.rfd, self.wfd)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self.scratch.cleanup()

    def exit_description(self) -> str:
        code = self.proc.wait(timeout=5)
        if code < 0:
            return f"was killed by signal {signal.Signals(-code).name}"
        return f"exited with status {code}"


def close_quietly(*fds: int) -> None:
    """Close our ends of a child's pipes, whether or not they are still open."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


@dataclass
class Limits:
    check_timeout: float = 10.0  # wall-clock seconds per check
    time_budget: float = 120.0  # wall-clock seconds for a whole submission
    startup_timeout: float = 60.0  # importing torch and the student's module
    memory_mb: int = 4096  # address space of the child
    cpu_seconds: int = 300


class SubprocessLauncher:
    """Starts `python child.py` as a plain child process with resource limits."""

    sandboxed = False
    description = "no sandbox"
    warning: str | None = None  # one line the caller shows when the child runs less protected than it should

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def command(self, argv: list[str], scratch: str, student_dir: str | None) -> list[str]:
        return argv

    def spawn(self, student_file: Path, helpers_file: Path | None, forbidden: list[str]) -> ChildProcess:
        """A new child process that imports `student_file` and answers on two fresh pipes."""
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        args = ["--fds", f"{to_child_r},{from_child_w}", "--student", str(student_file)]
        if helpers_file is not None:
            args += ["--helpers", str(helpers_file)]
        for name in forbidden:
            args += ["--forbid", name]
        try:
            child = self.start(args, (to_child_r, from_child_w), str(student_file.parent))
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        child.rfd, child.wfd = from_child_r, to_child_w
        return child

    def start(self, args: list[str], pass_fds: tuple[int, ...], student_dir: str | None) -> ChildProcess:
        """Run child.py with `args` in a fresh scratch folder (seeing `student_dir`, if given)."""
        scratch = tempfile.TemporaryDirectory(prefix="kit-child-")
        argv = [sys.executable, "-P", "-s", str(CHILD_SCRIPT), *args, "--scratch", scratch.name]
        try:
            proc = subprocess.Popen(
                self.command(argv, scratch.name, student_dir), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, pass_fds=pass_fds, start_new_session=True, env=child_env(),
                preexec_fn=self.apply_limits, cwd=scratch.name,
            )
        except BaseException:
            scratch.cleanup()
            raise
        return ChildProcess(proc, -1, -1, scratch)

    def apply_limits(self) -> None:
        """Runs in the forked process before the child starts; everything it starts inherits the limits."""
        import resource

        mb = 1 << 20
        # CUDA reserves huge address ranges it never touches: with a GPU, limit data, not addresses
        memory = resource.RLIMIT_DATA if gpu_nodes() else resource.RLIMIT_AS
        for limit, value in ((memory, self.limits.memory_mb * mb),
                             (resource.RLIMIT_CPU, self.limits.cpu_seconds),
                             (resource.RLIMIT_FSIZE, 256 * mb),
                             (resource.RLIMIT_CORE, 0)):
            try:
                resource.setrlimit(limit, (value, value))
            except (ValueError, OSError):
                pass


def gpu_nodes() -> list[str]:
    """NVIDIA device nodes (they appear only once the driver is loaded)."""
    import glob

    return sorted(glob.glob("/dev/nvidia*"))


def child_env() -> dict[str, str]:
    """A small environment: enough to find torch, nothing of the grader's secrets."""
    keep = ("PATH", "LANG", "LC_ALL", "HOME", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH")
    env = {k: v for k, v in os.environ.items() if k in keep}
    # one thread each: a class is graded in parallel processes, and a fork server must not start thread pools
    env.update(PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return env


@dataclass
class Runner:
    """Runs one submission's code in a child process, one batch of operations at a time."""

    student_file: Path
    helpers_file: Path | None
    forbidden: list[str]
    limits: Limits = field(default_factory=Limits)
    launcher: SubprocessLauncher | None = None
    child: ChildProcess | None = None
    broken: str | None = None
    restarts: int = 0
    started_at: float | None = None
    output: list[str] = field(default_factory=list)
    import_hits: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.launcher is None:
            self.launcher = SubprocessLauncher(self.limits)

    def start(self) -> None:
        """Spawn the child now, so its start-up overlaps whatever the caller does next."""
        if self.child is None and self.broken is None:
            self.child = self.launcher.spawn(self.student_file, self.helpers_file, self.forbidden)

    def close(self) -> None:
        if self.child is not None:
            self.child.kill()
            self.child = None

    def request(self, msg: dict, check_timeout: float | None = None) -> dict:
        """Send one batch and wait for its reply, within the check's and the submission's time."""
        if self.started_at is None:
            self.started_at = time.monotonic()
        if self.broken:
            raise SubmissionBroken(self.broken)
        budget_left = self.limits.time_budget - (time.monotonic() - self.started_at)
        if budget_left <= 0:
            self.broken = f"the submission used up its time budget of {self.limits.time_budget:g} s"
            self.close()
            raise SubmissionBroken(self.broken)
        timeout = min(check_timeout or self.limits.check_timeout, budget_left)
        self._ensure_ready()
        child = self.child
        from .child import ChannelClosed, read_message, write_message

        try:
            write_message(child.wfd, msg)
            reply = read_message(child.rfd, time.monotonic() + timeout)
        except TimeoutError:
            self._lost(f"timed out after {timeout:g} s")
            raise CheckTimeout(f"timed out after {timeout:g} s (is there an endless loop?)") from None
        except (ChannelClosed, BrokenPipeError):
            how = self._lost(None)
            raise ChildError(f"the process running your code {how} in the middle of this check") from None
        except Exception as exc:  # garbage on the pipe: unreadable or unsafe data
            self._lost("sent unreadable data")
            raise ChildError(f"the process running your code sent data that could not be read ({exc})") from None
        self.output.append(reply.get("output", ""))
        return reply

    def take_output(self) -> str:
        text, self.output = "".join(self.output), []
        return text

    def _ensure_ready(self) -> None:
        self.start()
        child = self.child
        if child.hello is not None:
            return
        from .child import ChannelClosed, read_message

        try:
            hello = read_message(child.rfd, time.monotonic() + self.limits.startup_timeout)
        except TimeoutError:
            self.broken = f"importing your code took longer than {self.limits.startup_timeout:g} s"
        except (ChannelClosed, ValueError, EOFError, RuntimeError) as exc:
            how = child.exit_description() if isinstance(exc, ChannelClosed) else "sent unreadable data"
            self.broken = f"the process running your code {how} while importing {self.student_file.name}"
        else:
            self.output.append(hello.get("output", ""))
            self.import_hits = list(hello.get("forbidden", []))
            if hello.get("ready"):
                child.hello = hello
                return
            self.broken = import_error_message(self.student_file.name, hello["error"])
        self.close()
        raise SubmissionBroken(self.broken)

    def _lost(self, reason: str | None) -> str:
        """The child is gone or useless: kill it; later checks get a fresh one, up to a limit."""
        how = reason or (self.child.exit_description() if self.child else "died")
        self.close()
        self.restarts += 1
        if self.restarts >= MAX_RESTARTS:
            self.broken = f"stopped after the process running your code failed {self.restarts} times (last: {how})"
        return how


def import_error_message(filename: str, error: dict) -> str:
    text = f"could not import {filename}: {error['type']}: {error['message']}"
    if error.get("traceback"):
        text += "\n" + error["traceback"].rstrip()
    return text


def make_runner(submission: Path, assignment: Assignment, limits: Limits | None = None,
                launcher: SubprocessLauncher | None = None) -> Runner:
    """The runner for `assignment`'s file in the folder `submission`."""
    limits = limits or Limits(check_timeout=assignment.check_timeout, time_budget=assignment.time_budget)
    if launcher is None:  # sandboxed when bubblewrap works here; else plain, with launcher.warning set
        from .sandbox import make_launcher

        launcher = make_launcher(limits, require=False)
    submission = submission.resolve()
    runner = Runner(submission / assignment.file, assignment.helpers_file, assignment.all_forbidden(),
                    limits=limits, launcher=launcher)
    if not runner.student_file.is_file():
        runner.broken = f"{assignment.file} not found in {submission}"
    return runner
