"""What `kit collect` tells the instructor: one entry per source found, with what happened to it and why."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

COLLECTED, REJECTED, SUPERSEDED, KEPT, IGNORED = "collected", "rejected", "superseded", "kept", "ignored"


@dataclass
class Entry:
    """What happened to one source (an archive, a student folder, a stray file)."""

    source: str
    student: str | None
    status: str
    reasons: list[str] = field(default_factory=list)  # why rejected / superseded, or what was odd
    timestamp: str | None = None  # the submission time, as nbgrader writes it
    timestamp_source: str | None = None  # who says so: one of timestamps.FROM_*
    dest: str | None = None
    files: int = 0

    @property
    def odd(self) -> bool:
        return self.status == COLLECTED and bool(self.reasons)


@dataclass
class CollectReport:
    assignment: str
    dest: str
    entries: list[Entry] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Every source collected (or knowingly kept/superseded) without anything odd."""
        return all(e.status in (COLLECTED, SUPERSEDED, KEPT) and not e.odd for e in self.entries)

    def to_json(self) -> dict:
        return {"assignment": self.assignment, "dest": self.dest,
                "entries": [asdict(e) | {"odd": e.odd} for e in self.entries]}
