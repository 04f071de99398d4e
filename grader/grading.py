"""Grading a whole class: every submission, in parallel, each in its own sandboxed child.

The main process never runs a check. It hands submissions to a pool of worker
processes (spawn context, each imports torch and pytest once) and writes each report
to the gradebook as it arrives. A worker runs `run_suite` for one submission at a
time; the student's code runs only in that worker's child process (the runner's),
inside the sandbox, so a submission can crash, hang or kill its own child but not the
worker. Should a worker die anyway (out of memory, a bug), the pool is rebuilt and the
submissions it was running are tried again, up to `MAX_ATTEMPTS` times.

Workers ignore Ctrl-C (the main process decides what happens), die with the main
process (even after `kill -9`), and take their child down with them.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .collect import TIMESTAMP_FILE, read_timestamp, valid_student
from .course import Assignment

MAX_ATTEMPTS = 3
HASH_SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints"}


@dataclass
class Submission:
    student: str
    path: Path
    content_hash: str
    timestamp: datetime | None = None


@dataclass
class Outcome:
    """What came back for one submission: a report (as JSON), or why none could be made."""

    submission: Submission
    report: dict | None
    error: str | None = None
    seconds: float = 0.0


# -- what is graded -------------------------------------------------------------------------------

def content_hash(folder: Path) -> str:
    """A fingerprint of everything in a submission folder (names, link targets and bytes), links not followed.

    `timestamp.txt` is left out: handing in the same files again is the same submission.
    """
    h = hashlib.sha256()
    root = str(folder)
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in HASH_SKIP_DIRS)
        for name in sorted(filenames) + sorted(d for d in dirnames if os.path.islink(os.path.join(dirpath, d))):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if rel == TIMESTAMP_FILE or name.endswith((".pyc", ".pyo")):
                continue
            h.update(rel.encode("utf-8", "surrogateescape") + b"\0")
            if os.path.islink(path):
                h.update(b"L" + os.readlink(path).encode("utf-8", "surrogateescape") + b"\0")
                continue
            try:
                with open(path, "rb") as f:
                    h.update(b"F")
                    for chunk in iter(lambda: f.read(1 << 16), b""):
                        h.update(chunk)
            except OSError as exc:
                h.update(b"E" + str(exc.errno).encode())
            h.update(b"\0")
    return h.hexdigest()


def suite_hash(assignment: Assignment) -> str:
    """A fingerprint of the assignment's checks (public and hidden): change a check, and everything is regraded."""
    h = hashlib.sha256()
    for path in sorted(assignment.suite_dir.iterdir()):
        if path.is_file() and path.suffix in (".py", ".toml"):
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def find_submissions(submitted: Path, assignment: str) -> tuple[list[Submission], list[str]]:
    """Every `submitted/<student>/<assignment>/` folder, and notes on what was passed over."""
    found, skipped = [], []
    if not submitted.is_dir():
        return found, [f"no folder {submitted}"]
    for child in sorted(submitted.iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue
        folder = child / assignment
        if not folder.is_dir():
            continue
        if not valid_student(child.name):
            skipped.append(f"{child.name!r}: not a usable student id")
            continue
        if child.is_symlink() or folder.is_symlink():
            skipped.append(f"{child.name}: the submission folder is a link")
            continue
        found.append(Submission(child.name, folder.resolve(), content_hash(folder), read_timestamp(folder)))
    return found, skipped


# -- the worker side ----------------------------------------------------------------------------------

_current_runner = None  # the runner of the submission being graded, so SIGTERM can take its child along


def _die_with_parent(parent: int) -> None:
    """Exit when the main process is gone, whichever way it went (kill -9 included)."""
    try:  # Linux: the kernel sends SIGTERM when the parent dies
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                _terminate(signal.SIGTERM, None)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True, name="kit-watch-parent").start()


def _terminate(signum, frame) -> None:
    for resource in [_current_runner, *_launchers.values()]:
        try:
            if resource is not None and hasattr(resource, "close"):
                resource.close()
        except Exception:  # noqa: BLE001
            pass
    os._exit(128 + signum)


_fork_server = True  # set by init_worker: fork each child from a warm zygote (see forkserver.py)
_launchers: dict = {}  # this worker's launcher per (limits, require_sandbox): the zygote outlives a submission


def init_worker(parent: int, fork_server: bool = True) -> None:
    """Runs once in each worker: signals, then the heavy imports, so each task starts warm."""
    global _fork_server
    _fork_server = fork_server
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    _die_with_parent(parent)
    os.environ.setdefault("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    import pytest  # noqa: F401
    import torch

    torch.set_num_threads(1)  # -j workers share the cores: one thread each, no oversubscription
    from . import session  # noqa: F401


def worker_launcher(limits, require_sandbox: bool):
    """The launcher this worker reuses for every submission: a fork server unless turned off."""
    from .sandbox import make_launcher

    key = (repr(limits), require_sandbox)
    if key not in _launchers:
        launcher = make_launcher(limits, require=require_sandbox)
        if _fork_server:
            from .forkserver import ForkLauncher

            launcher = ForkLauncher(launcher)
        _launchers[key] = launcher
    return _launchers[key]


def grade_one(suite_dir: str, submission: str, require_sandbox: bool) -> dict:
    """The task a worker runs: one submission, public and hidden checks; returns `Report.to_json()`."""
    global _current_runner
    from .course import load_assignment
    from .runner import Limits, make_runner
    from .session import run_suite

    spec = load_assignment(Path(suite_dir))
    limits = Limits(check_timeout=spec.check_timeout, time_budget=spec.time_budget)
    launcher = worker_launcher(limits, require_sandbox)
    runner = make_runner(Path(submission), spec, limits=limits, launcher=launcher)
    _current_runner = runner
    try:
        runner.start()  # the child starts while pytest collects the checks
        report = run_suite(spec, Path(submission), runner=runner, hidden=True)
    finally:
        runner.close()
        _current_runner = None
    if launcher.warning:
        report.notes.append(launcher.warning)
    return report.to_json()


def check_sandbox(limits, require: bool) -> tuple[bool, str]:
    """(sandboxed, description) for this machine; raises the sandbox's error when required and missing."""
    from .sandbox import make_launcher

    launcher = make_launcher(limits, require)
    if launcher.sandboxed:
        return True, launcher.description
    return False, launcher.warning or "no sandbox"


# -- the pool ---------------------------------------------------------------------------------------

def suite_failed(report: dict) -> str | None:
    """The report of a suite that could not run at all (a setup problem, not the student's): its message."""
    checks = report.get("checks", [])
    if len(checks) == 1 and checks[0]["id"] == "suite" and checks[0]["component"] == "main":
        return checks[0]["message"]
    return None


def _warm() -> None:
    """A no-op task: submitting one makes the pool start a worker (which imports torch) now."""


class WorkerPool:
    """Worker processes that grade submissions; start them early so their imports overlap other work."""

    def __init__(self, jobs: int, require_sandbox: bool, *, task: Callable = grade_one,
                 max_attempts: int = MAX_ATTEMPTS, fork_server: bool = True) -> None:
        self.jobs = max(1, jobs)
        self.require_sandbox = require_sandbox
        self.fork_server = fork_server
        self.task = task
        self.max_attempts = max_attempts
        self.executor: cf.ProcessPoolExecutor | None = None

    def start(self) -> WorkerPool:
        if self.executor is None:
            self.executor = cf.ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
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

    def grade(self, assignment: Assignment, submissions: list[Submission]) -> Iterator[Outcome]:
        """Yield each submission's outcome as soon as it is known (in completion order).

        Closing the generator, or an exception in the caller (Ctrl-C included), stops the workers.
        """
        todo = list(submissions)
        attempts = {s.student: 0 for s in todo}
        try:
            while todo:
                self.start()
                futures: dict[cf.Future, Submission] = {}
                retry: list[Submission] = []
                for sub in todo:
                    fut = self.executor.submit(self.task, str(assignment.suite_dir), str(sub.path), self.require_sandbox)
                    futures[fut] = sub
                todo = []
                pending = set(futures)
                started: dict[cf.Future, float] = {}
                broken = False
                while pending:
                    done, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                    now = time.monotonic()
                    for fut in pending:
                        if fut not in started and fut.running():
                            started[fut] = now
                    for fut in done:
                        sub = futures[fut]
                        seconds = now - started.get(fut, now)
                        try:
                            result = fut.result()
                        except cf.process.BrokenProcessPool:
                            broken = True
                            attempts[sub.student] += 1
                            if attempts[sub.student] >= self.max_attempts:
                                yield Outcome(sub, None, f"a grading worker died {attempts[sub.student]} times "
                                                         "while grading this submission", seconds)
                            else:
                                retry.append(sub)
                            continue
                        except Exception as exc:  # noqa: BLE001 - an error in the grader, not the student's
                            yield Outcome(sub, None, f"{type(exc).__name__}: {exc}", seconds)
                            continue
                        failed = suite_failed(result)
                        yield Outcome(sub, None if failed else result, failed, seconds)
                if broken:  # a dead worker breaks the whole pool: start a fresh one for the rest
                    self.close()
                todo = retry
        finally:
            self.close()


def grade_all(assignment: Assignment, submissions: list[Submission], *, jobs: int, require_sandbox: bool,
              task: Callable = grade_one, max_attempts: int = MAX_ATTEMPTS, fork_server: bool = True
              ) -> Iterator[Outcome]:
    """Grade `submissions` with up to `jobs` workers; yields each outcome as soon as it is known."""
    pool = WorkerPool(min(jobs, max(1, len(submissions))), require_sandbox, task=task, max_attempts=max_attempts,
                      fork_server=fork_server)
    yield from pool.grade(assignment, submissions)


def _stop(pool: cf.ProcessPoolExecutor) -> None:
    """Shut the pool down now: cancel what has not started, end the workers (and their children)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
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


# -- the class at a glance --------------------------------------------------------------------------

def summarize(reports: dict[str, dict]) -> dict:
    """Per-component means, the distribution of totals, and which checks failed how often."""
    import statistics

    from .report import FAILED, PASSED, SKIPPED, Report

    parsed = {student: Report.from_json(r) for student, r in reports.items()}
    totals = [r.score for r in parsed.values()]
    maxima = [r.max_score for r in parsed.values()]
    components: dict[str, dict] = {}
    failures: dict[str, dict] = {}
    for report in parsed.values():
        for name, (got, top) in report.components().items():
            c = components.setdefault(name, {"component": name, "max_score": top, "scores": []})
            c["max_score"] = max(c["max_score"], top)
            c["scores"].append(got)
        for check in report.checks:
            if check.status in (PASSED, SKIPPED):
                continue
            f = failures.setdefault(check.id, {"check": check.id, "component": check.component,
                                               "max_points": check.max_points, "hidden": check.hidden,
                                               "failed": 0, "error": 0})
            f["failed" if check.status == FAILED else "error"] += 1
    comp_rows = []
    for c in components.values():
        scores = c.pop("scores")
        c.update(mean=round(statistics.fmean(scores), 4), full_marks=sum(1 for s in scores if s >= c["max_score"] - 1e-9),
                 zero=sum(1 for s in scores if s <= 1e-9))
        comp_rows.append(c)
    bins = [0] * 11  # [0,10%), ..., [90%,100%), 100%
    for score, top in zip(totals, maxima):
        frac = score / top if top else 0.0
        bins[10 if frac >= 1 - 1e-9 else min(9, int(frac * 10))] += 1
    labels = [f"{10 * i}-{10 * i + 10}%" for i in range(10)] + ["100%"]
    return {
        "submissions": len(parsed),
        "max_score": max(maxima) if maxima else 0.0,
        "mean": round(statistics.fmean(totals), 4) if totals else 0.0,
        "median": statistics.median(totals) if totals else 0.0,
        "min": min(totals) if totals else 0.0,
        "max": max(totals) if totals else 0.0,
        "full_marks": sum(1 for r in parsed.values() if r.all_passed),
        "components": comp_rows,
        "distribution": [{"range": label, "count": n} for label, n in zip(labels, bins)],
        "failures": sorted(failures.values(), key=lambda f: (-(f["failed"] + f["error"]), f["check"])),
    }


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


if __name__ == "__main__":  # pragma: no cover - a manual smoke test
    from .course import find_course

    course = find_course()
    spec = course.assignment(sys.argv[1])
    subs, _ = find_submissions(course.root / "submitted", spec.name)
    for outcome in grade_all(spec, subs, jobs=default_jobs(), require_sandbox=False):
        print(outcome.submission.student, outcome.report and outcome.report["score"], outcome.error)
