"""The grader's side of the child process: start it, talk to it, survive it.

One `Runner` serves one submission. It is handed a launcher (kit.grader.launch), keeps a
child alive across checks, gives each request a deadline that covers reading and decoding
the reply, checks every reply against the protocol (kit.grader.replies), and turns every way
a child can go wrong (hang, crash, exit, garbage on the pipe) into an exception that costs
the current check, never the run. This module does not import torch, so `kit check` can
start the child before it pays for its own torch import.
"""
from __future__ import annotations

import time
from pathlib import Path

from . import replies
from .child.wire import ChannelClosed, WireError, read_message, write_message
from .course import Assignment
from .graded import GradedFile, graded_file
from .launch import CHILD_PACKAGE, ChildHandle, Launcher, SpawnRequest
from .problems import import_failed
from .report import Note

MAX_RESTARTS = 3
MAX_KEPT_OUTPUT = 200_000  # characters of student output kept for one whole submission


class ChildError(Exception):
    """The child could not answer: the check that asked becomes an error, with this message."""


class CheckTimeout(ChildError):
    pass


class SubmissionBroken(ChildError):
    """Nothing more can run for this submission (import failed, budget spent, too many crashes)."""


class Runner:
    """Runs one submission's code in a child process, one batch of operations at a time."""

    def __init__(self, request: SpawnRequest, launcher: Launcher, graded: GradedFile | None = None) -> None:
        self.request = request
        self.graded = graded or GradedFile(request.student_file, request.student_file.name)
        self.launcher = launcher
        self.limits = launcher.limits
        self.child: ChildHandle | None = None
        self.broken: str | None = None
        self.unusable: str | None = None  # why the student's file cannot be used at all (said once, not per check)
        self.import_error: dict | None = None  # the student's exception, when importing their file failed
        self.import_hits: list[str] = []  # forbidden APIs called while importing
        self.imported: list[tuple[str, str]] = []  # (file, sha256) of the student sources that ran
        self.restarts = 0
        self.forbidding: list[str] | None = None  # what the current child was last told to forbid
        self.started_at: float | None = None
        self.output: list[str] = []
        self.kept_output = 0

    @property
    def filename(self) -> str:
        """The graded file as the student knows it (hw1.ipynb for a notebook, whose module the child imports)."""
        return self.graded.name

    @property
    def notes(self) -> list[Note]:
        """What the report should say about the graded file (which one was chosen, what of it was left out)."""
        return self.graded.notes

    def locate(self, file: str, line: int) -> str:
        """A line of a file the child imported, as the student finds it (a notebook's cell)."""
        return self.graded.locate(file, line)

    def mark_unusable(self, why: str) -> None:
        """Nothing of this submission can run (its file is missing): every check says so, once."""
        self.broken = self.unusable = why

    def start(self) -> None:
        """Spawn the child now, so its start-up overlaps whatever the caller does next."""
        if self.child is None and self.broken is None:
            self.child = self.launcher.spawn(self.request)

    def close(self) -> None:
        if self.child is not None:
            self.child.kill()
            self.child = None
        self.forbidding = None

    def request_batch(self, msg: dict, check_timeout: float | None = None) -> dict:
        """Send one batch and wait for its checked reply, within the check's and the submission's time."""
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
        if msg["reset"]:  # a check's forbidden APIs (60 names in hw2) are sent when they change, not per check
            if msg["forbidden"] == self.forbidding:
                msg = {**msg, "forbidden": None}
            else:
                self.forbidding = msg["forbidden"]
        try:
            write_message(self.child.wfd, msg)
            reply = replies.batch(read_message(self.child.rfd, time.monotonic() + timeout),
                                  len(msg["ops"]), len(msg["fetch"]))
            reply["error"] = self.graded.relocate(reply["error"])
        except TimeoutError:
            self._lost(f"timed out after {timeout:g} s")
            raise CheckTimeout(f"timed out after {timeout:g} s (is there an endless loop?)") from None
        except (ChannelClosed, BrokenPipeError):
            how = self._lost(None)
            raise ChildError(f"the process running your code {how} in the middle of this check") from None
        except (WireError, replies.BadReply) as exc:
            self._lost("sent unreadable data")
            raise ChildError(f"the process running your code sent data that could not be read ({exc})") from None
        self._keep_output(reply["output"])
        return reply

    def take_output(self) -> str:
        text, self.output = "".join(self.output), []
        return text

    def _keep_output(self, text: str) -> None:
        room = MAX_KEPT_OUTPUT - self.kept_output
        if text and room > 0:
            cut = "\n[... output truncated: the submission printed too much]" if len(text) > room else ""
            self.output.append(text[:room] + cut)
            self.kept_output += len(text)

    def _ensure_ready(self) -> None:
        self.start()
        child = self.child
        if child.hello is not None:
            return
        try:
            hello = replies.hello(read_message(child.rfd, time.monotonic() + self.limits.startup_timeout))
        except TimeoutError:
            self.broken = f"importing your code took longer than {self.limits.startup_timeout:g} s"
        except ChannelClosed:
            self.broken = f"the process running your code {child.exit_description()} while importing {self.filename}"
        except (WireError, replies.BadReply):
            self.broken = f"the process running your code sent unreadable data while importing {self.filename}"
        else:
            self._keep_output(hello["output"])
            self.import_hits = hello["forbidden"]
            self.imported = hello["imported"]
            if hello["ready"]:
                child.hello = hello
                return
            self.import_error = self.graded.relocate(hello["error"])
            self.broken = import_failed(self.filename, self.import_error, self.graded.place,
                                        notebook=self.graded.source_map is not None)
        self.unusable = self.broken
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


def open_runner(assignment: Assignment, submission: Path, launcher: Launcher) -> Runner:
    """The runner for `assignment`'s file in `submission` (a folder, or a notebook), its child not started yet.

    The caller discards `runner.graded` once the report is made (a notebook's module lives in a private
    folder until then).
    """
    helpers = assignment.helpers_file
    graded = graded_file(assignment, submission.resolve(), [str(CHILD_PACKAGE)] + ([str(helpers)] if helpers else []))
    runner = Runner(SpawnRequest(graded.path, helpers, assignment.all_forbidden()), launcher, graded)
    if graded.unusable:
        runner.mark_unusable(graded.unusable)
    return runner
