"""Results of one submission: what every check found, and the score they add up to.

Plain data on purpose: reports travel between processes, into JSON, JUnit,
Gradescope and the gradebook, and none of those should need pytest or torch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"


@dataclass
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

    def public_view(self) -> CheckResult:
        """The result as a student may see it: a hidden check keeps its verdict only."""
        if not self.hidden:
            return self
        message = "" if self.status == PASSED else "hidden check failed"
        return CheckResult(self.id, self.component, self.status, self.points, self.max_points,
                           message, self.description, True, self.gpu, "", self.duration)


@dataclass
class Report:
    assignment: str
    checks: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # run-wide warnings (no sandbox, no CUDA...)

    @property
    def score(self) -> float:
        return round(sum(c.points for c in self.checks), 6)

    @property
    def max_score(self) -> float:
        """Points of every check that ran or could not run; skipped GPU checks do not count."""
        return round(sum(c.max_points for c in self.checks if c.status != SKIPPED), 6)

    @property
    def all_passed(self) -> bool:
        return all(c.status in (PASSED, SKIPPED) for c in self.checks)

    def components(self) -> dict[str, tuple[float, float]]:
        """Score and max score per component, in the order components first appear."""
        out: dict[str, tuple[float, float]] = {}
        for c in self.checks:
            if c.status == SKIPPED:
                continue
            got, top = out.get(c.component, (0.0, 0.0))
            out[c.component] = (got + c.points, top + c.max_points)
        return out

    def to_json(self, *, public: bool = False) -> dict:
        checks = [c.public_view() if public else c for c in self.checks]
        return {
            "assignment": self.assignment,
            "score": self.score,
            "max_score": self.max_score,
            "checks": [asdict(c) for c in checks],
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: dict) -> Report:
        return cls(data["assignment"], [CheckResult(**c) for c in data["checks"]], list(data.get("notes", [])))
