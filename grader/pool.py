"""Worker processes that grade submissions in parallel, each through `grade_submission`.

The main process never runs a check. It hands submissions to a pool of worker processes
(spawn context; no more than there are submissions; each imports torch and pytest once, and
keeps one launcher, a fork server unless turned off, for every submission it grades). A worker
starts its fork server before its own imports, so that both import torch at once, and is handed
the main process's sandbox probe rather than probing again. A Ray actor (kit.grader.ray_grader)
runs the same two functions, `init_worker` then `grade_in_worker`, on another machine.

The student's code runs only in the worker's sandboxed child, so a submission can crash, hang or
kill its own child but not the worker. Should a worker die anyway (out of memory, a bug), the
pool is rebuilt and the submissions it was running are tried again, each by itself, so that only
the one that kills a worker is charged for it, up to `MAX_ATTEMPTS` times; so is a submission
whose checks did not run to their end (`NotGraded`).

Workers ignore Ctrl-C (the main process decides what happens), die with the main process
(even after `kill -9`), and take their child down with them.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .course import Assignment, SetupError, load_assignment
from .launch import Limits
from .report import Report
from .runner import ChildError

if TYPE_CHECKING:
    from .sandbox import Probe

MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Job:
    """One submission to grade: who, and where its files are."""

    student: str
    path: Path


@dataclass
class Outcome:
    """What came back for one submission: a report, or why none could be made."""

    job: Job
    report: Report | None
    error: str | None = None
    seconds: float = 0.0
    node: str = ""  # the machine that graded it


# -- the worker side ----------------------------------------------------------------------------------

_launchers: dict = {}  # this worker's launcher per (limits, require_sandbox): the zygote outlives a submission
_setup: WorkerSetup | None = None


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker knows before its first submission: the suite it grades, and how."""

    suite_dir: str
    require_sandbox: bool
    fork_server: bool = True
    probe: Probe | None = None  # the sandbox probe of the machine the worker runs on, when already made


def _die_with_parent(parent: int) -> None:
    """Exit when the main process is gone, whichever way it went (kill -9 included)."""
    try:  # Linux: the kernel sends SIGTERM when the parent dies
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                _terminate(signal.SIGTERM, None)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True, name="kit-watch-parent").start()


def _terminate(signum, frame) -> None:
    for launcher in _launchers.values():
        try:
            launcher.close()  # ends the fork server, and with it the child of the submission in progress
        except OSError:
            pass
    os._exit(128 + signum)


def init_worker(parent: int, setup: WorkerSetup | None = None) -> None:
    """Runs once in each worker: signals, the suite's fork server, then the heavy imports, so each task
    starts warm. Without `setup` (a test's task in place of grading) only the signals and imports."""
    global _setup
    _setup = setup
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    _die_with_parent(parent)
    os.environ.setdefault("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    if setup is not None and setup.fork_server:  # its zygote imports torch while this process does
        launcher = assignment_launcher(setup.suite_dir, setup.require_sandbox)
        try:
            launcher.start(load_assignment(Path(setup.suite_dir)).helpers_file)
        except (OSError, ChildError, SetupError):
            pass  # the first submission's spawn tries again, and falls back to a fresh child
    import pytest  # noqa: F401 - imported now, so that the first submission does not pay for it
    import torch

    torch.set_num_threads(1)  # -j workers share the cores: one thread each, no oversubscription
    from . import grade  # noqa: F401


def worker_launcher(limits: Limits, require_sandbox: bool):
    """The launcher this worker reuses for every submission: a fork server unless turned off."""
    from .sandbox import make_launcher

    key = (limits, require_sandbox)
    if key not in _launchers:
        setup = _setup or WorkerSetup("", require_sandbox)
        launcher = make_launcher(limits, require=require_sandbox, found=setup.probe)
        if setup.fork_server:
            from .forkserver import ForkLauncher

            launcher = ForkLauncher(launcher)
        _launchers[key] = launcher
    return _launchers[key]


def assignment_launcher(suite_dir: str, require_sandbox: bool):
    """The worker's launcher for the assignment whose suite is in `suite_dir` (its limits)."""
    assignment = load_assignment(Path(suite_dir))
    limits = Limits(check_timeout=assignment.check_timeout, time_budget=assignment.time_budget)
    return worker_launcher(limits, require_sandbox)


def grade_in_worker(suite_dir: str, submission: str, require_sandbox: bool) -> tuple[Report, str]:
    """The task a worker runs: one submission, public and hidden checks; its report and this machine's name."""
    from .grade import grade_submission

    assignment = load_assignment(Path(suite_dir))
    launcher = assignment_launcher(suite_dir, require_sandbox)
    return grade_submission(assignment, Path(submission), launcher=launcher, hidden=True), socket.gethostname()


def _warm() -> None:
    """A no-op task: submitting one makes the pool start a worker (which imports torch) now."""


# -- the pool ---------------------------------------------------------------------------------------

class Attempts:
    """Failed attempts per submission (a worker that died, checks that did not run to their end), so that
    each is tried again up to `max_attempts` times and no more; the local pool and the Ray grader share it."""

    def __init__(self, max_attempts: int) -> None:
        self.max_attempts = max_attempts
        self.count: dict[str, int] = {}

    def _again(self, job: Job) -> bool:
        self.count[job.student] = self.count.get(job.student, 0) + 1
        return self.count[job.student] < self.max_attempts

    def lost(self, job: Job, seconds: float) -> Outcome | None:
        """A worker died while grading `job`: None to try again, else the outcome that says so."""
        if self._again(job):
            return None
        return Outcome(job, None, f"a grading worker died {self.count[job.student]} times while grading this "
                                  "submission", seconds)

    def failed(self, job: Job, exc: Exception, seconds: float) -> Outcome | None:
        """The task grading `job` raised `exc`: None to try again (NotGraded), else the outcome that says why."""
        from .grade import NotGraded

        if isinstance(exc, NotGraded):
            return None if self._again(job) else Outcome(job, None, str(exc), seconds)
        return Outcome(job, None, f"{type(exc).__name__}: {exc}", seconds)  # the grader's (or suite's) error


class WorkerPool:
    """Worker processes on this machine that grade submissions, started when there is something to grade."""

    def __init__(self, jobs: int, require_sandbox: bool, *, fork_server: bool = True, probe: Probe | None = None,
                 max_attempts: int = MAX_ATTEMPTS, task: Callable = grade_in_worker) -> None:
        self.jobs = max(1, jobs)
        self.task = task  # grade_in_worker, or what a test puts in its place
        self.require_sandbox = require_sandbox
        self.fork_server = fork_server
        self.probe = probe  # this machine's sandbox probe, handed to the workers
        self.max_attempts = max_attempts
        self.executor: cf.ProcessPoolExecutor | None = None

    def start(self, assignment: Assignment, submissions: int) -> None:
        """Start one worker per submission, `jobs` at most; each starts the assignment's fork server."""
        if self.executor is None:
            workers = max(1, min(self.jobs, submissions))
            setup = WorkerSetup(str(assignment.suite_dir), self.require_sandbox, self.fork_server, self.probe) \
                if self.task is grade_in_worker else None
            self.executor = cf.ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker, initargs=(os.getpid(), setup))
            for _ in range(workers):  # workers start on demand: ask for all of them now
                self.executor.submit(_warm)

    def close(self) -> None:
        if self.executor is not None:
            _stop(self.executor)
            self.executor = None

    def grade(self, assignment: Assignment, jobs: list[Job]) -> Iterator[Outcome]:
        """Yield each submission's outcome as soon as it is known (in completion order).

        Closing the generator, or an exception in the caller (Ctrl-C included), stops the workers.
        """
        todo, alone = list(jobs), []  # alone: jobs that were running when a worker died, each retried by itself
        attempts = Attempts(self.max_attempts)
        try:
            while todo or alone:
                self.start(assignment, len(todo) + len(alone))
                batch, todo = ([alone.pop(0)], todo) if alone else (todo, [])
                futures = {self.executor.submit(self.task, str(assignment.suite_dir), str(job.path),
                                                self.require_sandbox): job for job in batch}
                pending, started, broken = set(futures), {}, False
                while pending:
                    done, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                    now = time.monotonic()
                    started.update({fut: now for fut in pending if fut not in started and fut.running()})
                    for fut in done:
                        job = futures[fut]
                        seconds = now - started.get(fut, now)
                        try:
                            report, node = fut.result()
                        except cf.process.BrokenProcessPool:
                            broken = True
                            if len(batch) > 1:  # which job killed the worker is unknown: suspects run alone
                                (alone if fut in started else todo).append(job)
                            elif (outcome := attempts.lost(job, seconds)) is None:
                                alone.append(job)
                            else:
                                yield outcome
                            continue
                        except Exception as exc:  # noqa: BLE001 - NotGraded, or an error in the grader or suite
                            if (outcome := attempts.failed(job, exc, seconds)) is None:
                                todo.append(job)
                            else:
                                yield outcome
                            continue
                        yield Outcome(job, report, None, seconds, node)
                if broken:  # a dead worker breaks the whole pool: start a fresh one for the rest
                    self.close()
        finally:
            self.close()


def _stop(pool: cf.ProcessPoolExecutor) -> None:
    """Shut the pool down now: cancel what has not started, end the workers (and their children)."""
    processes = multiprocessing.active_children()  # the pool's workers: this process starts no others
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            try:
                proc.terminate()  # SIGTERM: the worker kills its child, then exits
            except (OSError, ValueError):
                pass
    deadline = time.monotonic() + 5
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            try:
                proc.kill()
            except (OSError, ValueError):
                pass


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
