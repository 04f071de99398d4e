"""Starting the child process that runs student code: its limits, what it is asked to run, how.

A `Launcher` turns a `SpawnRequest` (the student's file, the suite's helpers, the forbidden
APIs) into a started child with two pipes (`ChildHandle`). Three launchers implement it:
`PlainLauncher` here (a child process with resource limits), `BwrapLauncher`
(kit.grader.sandbox: the same inside bubblewrap) and `ForkLauncher`
(kit.grader.forkserver: a fork of a warm zygote started by another launcher). The runner is
handed a launcher and never builds one. This module does not import torch.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

CHILD_PACKAGE = Path(__file__).with_name("child")
# The child runs as the top-level package `child`, found next to nothing else of kit's.
BOOT = "import sys; sys.path.insert(0, sys.argv[1]); import child.__main__ as m; del sys.path[0]; m.main(sys.argv[2:])"


@dataclass(frozen=True)
class Limits:
    check_timeout: float = 10.0  # wall-clock seconds per check
    time_budget: float = 120.0  # wall-clock seconds for a whole submission
    startup_timeout: float = 60.0  # importing torch and the student's module
    memory_mb: int = 4096  # address space (data on GPU machines) of each process
    cpu_seconds: int = 300


@dataclass(frozen=True)
class SpawnRequest:
    """What a child is started for: import `student_file`, with the suite's helpers, forbidding these APIs."""

    student_file: Path
    helpers_file: Path | None = None
    forbidden: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChildCommand:
    """One start of the child package: its arguments, the descriptors it keeps, and the files it must see."""

    args: tuple[str, ...]
    pass_fds: tuple[int, ...]
    helpers_file: Path | None = None
    student_file: Path | None = None  # None for a fork server, which sees no student's files


class ChildHandle(Protocol):
    """A started child as the runner sees it: our ends of its pipes, and how to end it."""

    rfd: int
    wfd: int
    hello: dict | None

    def kill(self) -> None: ...

    def exit_description(self) -> str: ...


class Launcher(Protocol):
    limits: Limits
    sandboxed: bool
    description: str
    warning: str | None  # one line the caller shows when the child runs less protected than it should

    def spawn(self, request: SpawnRequest) -> ChildHandle: ...

    def close(self) -> None: ...


@dataclass(eq=False)
class StartedChild:
    """A started child process and our ends of its two pipes."""

    proc: subprocess.Popen
    scratch: tempfile.TemporaryDirectory
    rfd: int = -1
    wfd: int = -1
    hello: dict | None = None
    staging: list[str] = field(default_factory=list)  # folders made for this child only
    live: set | None = field(default=None, repr=False)  # its launcher's running children, which it leaves

    def kill(self) -> None:
        if self.live is not None:
            self.live.discard(self)
        close_quietly(self.rfd, self.wfd)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self.scratch.cleanup()
        for folder in self.staging:
            shutil.rmtree(folder, ignore_errors=True)

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


def gpu_nodes(dev: str = "/dev") -> list[str]:
    """NVIDIA device nodes (they appear only once the driver is loaded): nvidiactl, nvidia0.., nvidia-uvm,
    nvidia-uvm-tools, nvidia-modeset, and the folders nvidia-caps/ (MIG) and nvidia-caps-imex-channels/."""
    return sorted(glob.glob(os.path.join(dev, "nvidia*")))


def child_env() -> dict[str, str]:
    """A small environment: enough to find torch, nothing of the grader's secrets."""
    keep = ("PATH", "LANG", "LC_ALL", "HOME", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH")
    env = {k: v for k, v in os.environ.items() if k in keep}
    # one thread each: a class is graded in parallel processes, and a fork server must not start thread pools
    env.update(PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    # torch.cuda.is_available() through NVML, which leaves CUDA uninitialised: a fork server may ask and still fork
    env["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    return env


def spawn_args(request: SpawnRequest, fds: tuple[int, int]) -> tuple[str, ...]:
    args = ["--fds", f"{fds[0]},{fds[1]}", "--student", str(request.student_file)]
    if request.helpers_file is not None:
        args += ["--helpers", str(request.helpers_file)]
    for name in request.forbidden:
        args += ["--forbid", name]
    return tuple(args)


class PlainLauncher:
    """Starts the child as a plain process with resource limits (no sandbox: `warning` says so)."""

    sandboxed = False
    description = "no sandbox"

    def __init__(self, limits: Limits, warning: str | None = None) -> None:
        self.limits = limits
        self.warning = warning
        self.live: set[StartedChild] = set()

    def spawn(self, request: SpawnRequest) -> StartedChild:
        """A new child that imports the student's file and answers on two fresh pipes."""
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        command = ChildCommand(spawn_args(request, (to_child_r, from_child_w)), (to_child_r, from_child_w),
                               request.helpers_file, request.student_file)
        try:
            child = self.start(command)
        except BaseException:
            close_quietly(to_child_w, from_child_r)
            raise
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        child.rfd, child.wfd = from_child_r, to_child_w
        return child

    def start(self, command: ChildCommand) -> StartedChild:
        """Run the child package with `command` in a fresh scratch folder."""
        scratch = tempfile.TemporaryDirectory(prefix="kit-child-")
        argv = [sys.executable, "-P", "-s", "-c", BOOT, str(CHILD_PACKAGE.parent), *command.args,
                "--scratch", scratch.name]
        staging: list[str] = []
        try:
            proc = subprocess.Popen(
                self.wrap(argv, scratch.name, command, staging), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=command.pass_fds,
                start_new_session=True, env=child_env(), preexec_fn=self.apply_limits, cwd=scratch.name,
            )
        except BaseException:
            scratch.cleanup()
            for folder in staging:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        child = self.started(proc, scratch, staging)
        child.live = self.live
        self.live.add(child)
        return child

    def wrap(self, argv: list[str], scratch: str, command: ChildCommand, staging: list[str]) -> list[str]:
        """The command line that runs `argv` (a sandbox wraps it; folders it makes go in `staging`)."""
        return argv

    def started(self, proc: subprocess.Popen, scratch: tempfile.TemporaryDirectory,
                staging: list[str]) -> StartedChild:
        return StartedChild(proc, scratch, staging=staging)

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

    def close(self) -> None:
        """End every child this launcher started that is still running."""
        for child in list(self.live):
            child.kill()
