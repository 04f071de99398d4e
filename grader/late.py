"""Due dates, extensions and late penalties: how late a submission was, and what it costs.

The course says when each assignment is due (assignment.toml's `due`, or kit.toml's `[due]`,
which wins), what lateness costs (kit.toml's `[late]`), and which students have more time
(`extensions.toml` in the course folder, written by `kit extend`). The submission time is the
one `kit collect` recorded (nbgrader's timestamp.txt), never one the student chose.

`Deadlines.assess` turns that into a `Lateness`: plain data with a kind, from which the
penalty (`Lateness.penalty`, a number of points, as nbgrader stores it) and the sentence
that explains it (`Lateness.describe`) both follow. A submission without a recorded time is
`NO_TIME`: counted on time (nbgrader's rule) but flagged wherever it is shown, never
silently on time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .course import Assignment, ConfigError, Course, LatePolicy, read_toml, typed

EXTENSIONS_FILE = "extensions.toml"

# kinds of Lateness
NO_DUE = "no_due"  # the assignment has no due date: lateness means nothing
NO_TIME = "no_time"  # nothing recorded when it was handed in: counted on time, flagged
ON_TIME = "on_time"
LATE = "late"  # late, losing `fraction` of the maximum score (0 without a [late] policy)
CUT_OFF = "cut_off"  # later than the cut-off: no points

DAY, HOUR = timedelta(days=1), timedelta(hours=1)


@dataclass(frozen=True)
class Lateness:
    """How late one submission was against its (possibly extended) due date, and the share of the maximum lost."""

    kind: str
    due: datetime | None = None  # the student's due date, extension included (with its time zone)
    extended: bool = False  # `due` is an extension
    submitted: datetime | None = None  # UTC
    seconds: float = 0.0  # how late (0 when on time)
    units: int = 0  # started days or hours late, as the policy counts them
    unit: str = ""  # "day" or "hour"; "" when the policy does not count units
    rate: float = 0.0  # fraction of the maximum lost per unit
    cutoff_days: float | None = None
    fraction: float = 0.0  # of the maximum score lost, 0..1

    @property
    def flagged(self) -> bool:
        """Whether a person should look: nobody knows when it was handed in."""
        return self.kind == NO_TIME

    def penalty(self, raw: float, top: float) -> float:
        """Points lost from a raw score of `raw` out of `top`; never more than the raw score (nbgrader's rule)."""
        return round(min(max(raw, 0.0), self.fraction * top), 6)

    def describe(self) -> str:
        """Why the penalty is what it is, in one sentence ("" when the assignment has no due date)."""
        if self.kind == NO_DUE:
            return ""
        due = f"due {_when(self.due)}" + (" with an extension" if self.extended else "")
        if self.kind == NO_TIME:
            return (f"no submission time recorded ({due}): whether it was late is unknown; "
                    "counted on time until checked by hand")
        if self.kind == ON_TIME:
            return f"submitted on time ({due})"
        late = f"submitted {duration(self.seconds)} late ({due})"
        if self.kind == CUT_OFF:
            return f"{late}, after the {self.cutoff_days:g}-day cut-off: no points"
        if not self.fraction:
            return f"{late}: no late penalty"
        plural = "s" if self.units != 1 else ""
        return (f"{late}: -{_percent(self.fraction)} ({self.units} started {self.unit}{plural} "
                f"at {_percent(self.rate)} a {self.unit})")

    def to_json(self) -> dict:
        return {"kind": self.kind, "due": _iso(self.due), "extended": self.extended,
                "submitted": _iso(self.submitted), "seconds": self.seconds, "units": self.units, "unit": self.unit,
                "rate": self.rate, "cutoff_days": self.cutoff_days, "fraction": self.fraction}

    @classmethod
    def from_json(cls, data: dict) -> Lateness:
        return cls(**{**data, "due": _parse(data.get("due")), "submitted": _parse(data.get("submitted"))})


@dataclass(frozen=True)
class Deadlines:
    """A course's due dates, late policy and extensions: everything `assess` needs, read once."""

    due: dict[str, datetime]  # per assignment that has a due date
    policy: LatePolicy | None
    extensions: dict[str, dict[str, datetime]]  # assignment -> student -> new due date

    @classmethod
    def load(cls, course: Course, assignments: list[Assignment]) -> Deadlines:
        """The deadlines of `assignments` (their assignment.toml's `due`, overridden by kit.toml's `[due]`)."""
        due = {a.name: d for a in assignments if (d := course.due_date(a)) is not None}
        return cls(due, course.late, read_extensions(course))

    def assess(self, assignment: str, student: str, submitted: datetime | None) -> Lateness:
        """How late `student`'s submission of `assignment`, handed in at `submitted` (naive UTC, as nbgrader
        stores it, or aware), was."""
        due = self.due.get(assignment)
        if due is None:
            return Lateness(NO_DUE)
        extension = self.extensions.get(assignment, {}).get(student)
        base = Lateness(NO_TIME, due=extension or due, extended=extension is not None,
                        cutoff_days=self.policy.cutoff_days if self.policy else None)
        if submitted is None:
            return base
        when = submitted.replace(tzinfo=UTC) if submitted.tzinfo is None else submitted.astimezone(UTC)
        late = when - base.due
        if late <= timedelta(0):
            return replace(base, kind=ON_TIME, submitted=when)
        found = replace(base, kind=LATE, submitted=when, seconds=late.total_seconds())
        policy = self.policy
        if policy is None:
            return found
        if policy.cutoff_days is not None and late > timedelta(days=policy.cutoff_days):
            return replace(found, kind=CUT_OFF, fraction=1.0)
        if policy.per_day is None and policy.per_hour is None:
            return found
        unit, rate = ("day", policy.per_day) if policy.per_day is not None else ("hour", policy.per_hour)
        units = -(-late // (DAY if unit == "day" else HOUR))  # started days (hours): 1 minute late is 1
        return replace(found, units=units, unit=unit, rate=rate, fraction=min(1.0, round(units * rate, 9)))


# -- extensions.toml --------------------------------------------------------------------------------

def extensions_file(course: Course) -> Path:
    return course.root / EXTENSIONS_FILE


def read_extensions(course: Course) -> dict[str, dict[str, datetime]]:
    """`extensions.toml`: per assignment, per student, the new due date (with its time zone)."""
    from .collect import valid_student

    file = extensions_file(course)
    if not file.exists():
        return {}
    table = typed(dict[str, dict[str, datetime]], read_toml(file), file)
    known = course.names()
    for assignment, students in table.items():
        if assignment not in known:
            raise ConfigError(file, assignment, f"no assignment {assignment!r} in {course.suites}")
        for student in students:
            if not valid_student(student):
                raise ConfigError(file, f"{assignment}.{student}", "not a usable student id")
    return table


def write_extension(course: Course, assignment: str, student: str, until: datetime | None) -> Path:
    """Give `student` until `until` for `assignment` (None: take the extension back), in extensions.toml."""
    import tomli_w

    table = read_extensions(course)
    students = table.setdefault(assignment, {})
    if until is None:
        students.pop(student, None)
    else:
        students[student] = until
    table = {a: dict(sorted(s.items())) for a, s in sorted(table.items()) if s}
    file = extensions_file(course)
    header = "# Extensions: per assignment, each student's new due date (written by `kit extend`; edit freely).\n"
    tmp = file.with_name(f".{file.name}.tmp")
    tmp.write_text(header + tomli_w.dumps(table), encoding="utf-8")
    tmp.replace(file)
    return file


# -- words ------------------------------------------------------------------------------------------

def duration(seconds: float) -> str:
    """`seconds` in words, to the minute: "2 days 3 hours", "5 minutes", "under a minute"."""
    minutes = math.floor(seconds / 60)
    if minutes < 1:
        return "under a minute"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((days, "day"), (hours, "hour"), (minutes, "minute"))
             if n]
    return " ".join(parts[:2])


def _percent(fraction: float) -> str:
    return f"{round(fraction * 100, 4):g}%"


def _when(moment: datetime | None) -> str:
    """A moment in its own time zone, to the minute: "2026-12-01 23:59 +08:00"."""
    if moment is None:
        return "?"
    offset = moment.strftime("%z")
    zone = "UTC" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    return moment.strftime("%Y-%m-%d %H:%M ") + zone


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def class_notes(deadlines: Deadlines, assignment: str, found: dict[str, Lateness]) -> list[str]:
    """What a run over a class should tell the instructor about late work: counts, who has no time, and a late
    policy that cannot apply for want of a due date."""
    if assignment not in deadlines.due:
        return [f"{assignment} has no due date (assignment.toml's `due` or kit.toml's [due]): no late penalties"
                ] if deadlines.policy is not None else []
    by_kind: dict[str, list[str]] = {}
    for student, lateness in sorted(found.items()):
        by_kind.setdefault(lateness.kind, []).append(student)
    notes = []
    for kind, what in ((LATE, "late"), (CUT_OFF, "after the cut-off (no points)")):
        if by_kind.get(kind):
            n = len(by_kind[kind])
            notes.append(f"{n} submission{'s' if n != 1 else ''} of {assignment} {what}: {', '.join(by_kind[kind])}")
    if by_kind.get(NO_TIME):
        notes.append(f"no submission time for {', '.join(by_kind[NO_TIME])}: whether it was late is unknown, so it "
                     "is counted on time; check by hand")
    return notes
