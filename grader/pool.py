"""Worker processes that grade submissions in parallel, each through `grade_submission`.

The main process never runs a check. It hands submissions to a pool of worker processes
(spawn context; each imports torch and pytest once, and keeps one launcher, a fork server
unless turned off, for every submission it grades). The student's code runs only in the
worker's sandboxed child, so a submission can crash, hang or kill its own child but not the
worker. Should a worker die anyway (out of memory, a bug), the pool is rebuilt and the
submissions it was running are tried again, each by itself, so that only the one that kills
a worker is charged for it, up to `MAX_ATTEMPTS` times; so is a submission whose checks did
not run to their end (`NotGraded`).

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

from .course import Assignment
from .launch import Limits
from .report import Report

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
_fork_server = True


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


def init_worker(parent: int, fork_server: bool = True) -> None:
    """Runs once in each worker: signals, then the heavy imports, so each task starts warm."""
    global _fork_server
    _fork_server = fork_server
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    _die_with_parent(parent)
    os.environ.setdefault("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    import pytest  # noqa: F401 - imported now, so that the first submission does not pay for it
    import torch

    torch.set_num_threads(1)  # -j workers share the cores: one thread each, no oversubscription
    from . import grade  # noqa: F401


def worker_launcher(limits: Limits, require_sandbox: bool):
    """The launcher this worker reuses for every submission: a fork server unless turned off."""
    from .sandbox import make_launcher

    key = (limits, require_sandbox)
    if key not in _launchers:
        launcher = make_launcher(limits, require=require_sandbox)
        if _fork_server:
            from .forkserver import ForkLauncher

            launcher = ForkLauncher(launcher)
        _launchers[key] = launcher
    return _launchers[key]


def grade_in_worker(suite_dir: str, submission: str, require_sandbox: bool) -> tuple[Report, str]:
    """The task a worker runs: one submission, public and hidden checks; its report and this machine's name."""
    from .course import load_assignment
    from .grade import grade_submission

    assignment = load_assignment(Path(suite_dir))
    limits = Limits(check_timeout=assignment.check_timeout, time_budget=assignment.time_budget)
    launcher = worker_launcher(limits, require_sandbox)
    return grade_submission(assignment, Path(submission), launcher=launcher, hidden=True), socket.gethostname()


def _warm() -> None:
    """A no-op task: submitting one makes the pool start a worker (which imports torch) now."""


# -- the pool ---------------------------------------------------------------------------------------

class WorkerPool:
    """Worker processes that grade submissions; start them early so their imports overlap other work."""

    def __init__(self, jobs: int, require_sandbox: bool, *, fork_server: bool = True,
                 max_attempts: int = MAX_ATTEMPTS, task: Callable = grade_in_worker) -> None:
        self.jobs = max(1, jobs)
        self.task = task  # grade_in_worker, or what a test puts in its place
        self.require_sandbox = require_sandbox
        self.fork_server = fork_server
        self.max_attempts = max_attempts
        self.executor: cf.ProcessPoolExecutor | None = None

    def start(self) -> WorkerPool:
        if self.executor is None:
            self.executor = cf.ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker, initargs=(os.getpid(), self.fork_server))
            for _ in range(self.jobs):
                self.executor.submit(_warm)
        return self

    def close(self) -> None:
        if self.executor is not None:
            _stop(self.executor)
            self.executor = None

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def grade(self, assignment: Assignment, jobs: list[Job]) -> Iterator[Outcome]:
        """Yield each submission's outcome as soon as it is known (in completion order).

        Closing the generator, or an exception in the caller (Ctrl-C included), stops the workers.
        """
        from .grade import NotGraded

        todo, alone = list(jobs), []  # alone: jobs that were running when a worker died, each retried by itself
        attempts = {job.student: 0 for job in todo}
        try:
            while todo or alone:
                self.start()
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
                                continue
                            attempts[job.student] += 1
                            if attempts[job.student] < self.max_attempts:
                                alone.append(job)
                            else:
                                yield Outcome(job, None, f"a grading worker died {attempts[job.student]} times "
                                                         "while grading this submission", seconds)
                            continue
                        except NotGraded as exc:
                            attempts[job.student] += 1
                            if attempts[job.student] < self.max_attempts:
                                todo.append(job)
                            else:
                                yield Outcome(job, None, str(exc), seconds)
                            continue
                        except Exception as exc:  # noqa: BLE001 - an error in the grader (or the suite), not the student's
                            yield Outcome(job, None, f"{type(exc).__name__}: {exc}", seconds)
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
