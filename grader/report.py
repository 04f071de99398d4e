"""Results of one submission: what every check found, what is wrong with the submission as a whole,
and the score they add up to.

Plain data on purpose: reports travel between processes, into JSON, JUnit, Gradescope, the
gradebook and feedback pages, and none of those should need pytest or torch. Renderers
branch on the kinds defined here (a check's `reason`, a note's `kind`, a problem's `kind`),
never on message text, and what a student may see of a hidden check is defined once:
`CheckResult.redacted`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"

# why a check did not pass or did not run, when kit knows it (CheckResult.reason)
NO_CUDA = "no_cuda"  # a GPU check on a machine without CUDA: not run, counts towards no maximum
NOT_EMULATED = "not_emulated"  # a device check the emulated device could not run here: likewise
UNUSABLE = "unusable"  # the graded file could not be used: Report.problems says why, once
FORBIDDEN = "forbidden"  # the component used a forbidden API: Report.problems says which, once

# kinds of Note
SANDBOX = "sandbox"  # the child ran without the sandbox it should have had
GPU = "gpu"  # checks that could not run on this machine
LEFT_OUT = "left_out"  # what of a notebook was not graded (statements that do work, magics, shell escapes)
INFO = "info"


@dataclass(frozen=True)
class CheckResult:
    id: str
    component: str
    status: str
    points: float
    max_points: float
    message: str = ""
    description: str = ""
    hidden: bool = False
    gpu: bool = False
    output: str = ""  # what the student's code printed; never shown for hidden checks
    duration: float = 0.0
    reason: str = ""  # one of the kinds above, or "" (the message says it all)

    @property
    def counts(self) -> bool:
        """Whether its points count towards the maximum (a check that could not run here does not)."""
        return self.status != SKIPPED

    def redacted(self) -> CheckResult:
        """What a student may see: a hidden check keeps its id, component, points and verdict only
        (its message, inputs, docstring and what the code printed all stay with the instructor)."""
        if not self.hidden:
            return self
        message = "" if self.status in (PASSED, SKIPPED) else "hidden check failed"
        return replace(self, message=message, description="", output="")


@dataclass(frozen=True)
class Note:
    kind: str
    text: str


@dataclass(frozen=True)
class Problem:
    """Something wrong with the submission as a whole, or with a whole component: said once, not per check."""

    kind: str  # UNUSABLE or FORBIDDEN
    message: str
    component: str | None = None  # None: every component


@dataclass
class Report:
    assignment: str
    checks: list[CheckResult] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    graded_file: str = ""  # the file that was graded (relative to the submission folder)

    @property
    def score(self) -> float:
        return round(sum(c.points for c in self.checks), 6)

    @property
    def max_score(self) -> float:
        """Points of every check that ran or could not run; checks not run on this machine do not count."""
        return round(sum(c.max_points for c in self.checks if c.counts), 6)

    @property
    def all_passed(self) -> bool:
        return all(c.status == PASSED or not c.counts for c in self.checks)

    def components(self) -> dict[str, tuple[float, float]]:
        """Score and max score per component, in the order components first appear."""
        out: dict[str, tuple[float, float]] = {}
        for c in self.checks:
            if c.counts:
                got, top = out.get(c.component, (0.0, 0.0))
                out[c.component] = (got + c.points, top + c.max_points)
        return out

    def redacted(self) -> Report:
        """The report as its student may see it (see CheckResult.redacted)."""
        return replace(self, checks=[c.redacted() for c in self.checks])

    def to_json(self) -> dict:
        return {
            "assignment": self.assignment,
            "score": self.score,
            "max_score": self.max_score,
            "graded_file": self.graded_file,
            "problems": [asdict(p) for p in self.problems],
            "checks": [asdict(c) for c in self.checks],
            "notes": [asdict(n) for n in self.notes],
        }

    @classmethod
    def from_json(cls, data: dict) -> Report:
        # notes were plain strings before kinds existed: gradebooks keep such reports
        notes = [Note(**n) if isinstance(n, dict) else Note(INFO, n) for n in data.get("notes", [])]
        return cls(data["assignment"], [CheckResult(**c) for c in data["checks"]], notes,
                   [Problem(**p) for p in data.get("problems", [])], data.get("graded_file", ""))
