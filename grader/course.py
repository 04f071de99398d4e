"""A course and its assignments: `kit.toml` and each `assignment.toml`, parsed into typed objects.

Both files are checked when they are read: an unknown key, a value of the wrong type or a
missing required key is a `ConfigError` that names the file and the key (and the key meant,
when one is close), never a silently ignored setting.
"""
from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

COURSE_FILE = "kit.toml"
ASSIGNMENT_FILE = "assignment.toml"


class SetupError(Exception):
    """Something the user must fix before anything can be graded (exit status 2)."""


class ConfigError(SetupError):
    """A course or assignment file that does not say what kit needs; names the file and the key."""

    def __init__(self, file: Path, key: str, problem: str) -> None:
        super().__init__(f"{file}: {key}: {problem}" if key else f"{file}: {problem}")
        self.file, self.key = file, key


def parse(cls: type, data: Any, file: Path, where: str = "") -> Any:
    """An instance of the dataclass `cls` from a TOML table, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(file, where, f"expected a table, not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(fields)})"
            raise ConfigError(file, _join(where, key), f"unknown key{hint}")
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _value(hints[name], data[name], file, _join(where, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(file, _join(where, name), "required key is missing")
    return cls(**values)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def typed(hint: Any, value: Any, file: Path, where: str = "") -> Any:
    """`value` checked against the type `hint` (as `parse` checks each key), for files whose keys are data."""
    return _value(hint, value, file, where)


def _value(hint: Any, value: Any, file: Path, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # `X | None`: TOML has no null, so a value given must be an X (and says why not)
            return _value(options[0], value, file, where)
        for option in args:
            try:
                return _value(option, value, file, where)
            except ConfigError:
                continue
        raise ConfigError(file, where, f"{value!r} is not a valid value")
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(file, where, "expected a list")
        return tuple(_value(args[0], v, file, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(file, where, "expected a table")
        return {k: _value(args[1], v, file, _join(where, k)) for k, v in value.items()}
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(file, where, f"{value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(hint):
        return parse(hint, value, file, where)
    if hint is datetime:
        return _zoned(value, file, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is type(None) and value is None:
        return None
    if not isinstance(hint, type) or not isinstance(value, hint) or (isinstance(value, bool) and hint is not bool):
        raise ConfigError(file, where, f"expected {getattr(hint, '__name__', hint)}, not {value!r}")
    return value


def _zoned(value: Any, file: Path, where: str) -> datetime:
    """A TOML date and time with its time zone: without one, "23:59" would mean a different moment on
    every machine that reads it."""
    if not isinstance(value, datetime):
        raise ConfigError(file, where, f"expected a date and time with a time zone, like 2026-12-01T23:59:00+08:00, "
                                       f"not {value!r}")
    if value.tzinfo is None:
        raise ConfigError(file, where, f"{value.isoformat()} has no time zone: write one, like "
                                       f"{value.isoformat()}+08:00 or {value.isoformat()}Z")
    return value


def read_toml(file: Path) -> dict:
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, "", f"cannot be read ({exc})") from None


# -- assignment.toml ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Component:
    """A graded part of the assignment (a class or function of the student's file)."""

    forbidden: tuple[str, ...] = ()  # dotted torch APIs, or aten.<op>, that would do the student's work


@dataclass(frozen=True)
class AssignmentFile:
    """What `assignment.toml` may say."""

    title: str
    file: str  # the graded file students edit
    components: dict[str, Component]
    check_timeout: float = 10.0  # wall-clock seconds per check
    time_budget: float = 120.0  # wall-clock seconds for a whole submission
    due: datetime | None = None  # with its time zone; kit.toml's [due] wins


@dataclass(frozen=True)
class Assignment:
    name: str
    suite_dir: Path
    title: str
    file: str
    components: dict[str, Component]
    check_timeout: float = 10.0
    time_budget: float = 120.0
    due: datetime | None = None

    @property
    def config_file(self) -> Path:
        return self.suite_dir / ASSIGNMENT_FILE

    @property
    def module(self) -> str:
        return Path(self.file).stem

    @property
    def notebook(self) -> str:
        """The notebook form of the graded file, which students may hand in instead: hwN.ipynb."""
        return notebook_name(self.name)

    @property
    def helpers_file(self) -> Path | None:
        path = self.suite_dir / "remote.py"
        return path if path.exists() else None

    def forbidden(self, component: str) -> tuple[str, ...]:
        return self.components[component].forbidden

    def all_forbidden(self) -> tuple[str, ...]:
        return tuple(sorted({name for c in self.components.values() for name in c.forbidden}))

    def suite_files(self, hidden: bool) -> list[Path]:
        # public checks first, so a hidden check never runs before a public one in the same child
        files = sorted(self.suite_dir.glob("test_*.py"), key=lambda f: (is_hidden_file(f), f.name))
        return [f for f in files if hidden or not is_hidden_file(f)]

    def check_forbidden_names(self) -> None:
        """Every forbidden name must be an API of this torch: a misspelled one would forbid nothing."""
        from .forbidden import exists

        for component, spec in self.components.items():
            for name in spec.forbidden:
                if not exists(name):
                    raise ConfigError(self.config_file, f"components.{component}.forbidden",
                                      f"{name!r} is not an API of the installed torch")


def load_assignment(suite_dir: Path) -> Assignment:
    """The assignment whose suite lives in `suite_dir` (named after the folder)."""
    suite_dir = suite_dir.resolve()  # the child runs elsewhere: every path it is given is absolute
    file = suite_dir / ASSIGNMENT_FILE
    spec = parse(AssignmentFile, read_toml(file), file)
    if not spec.components:
        raise ConfigError(file, "components", "name at least one graded component ([components.Name])")
    return Assignment(name=suite_dir.name, suite_dir=suite_dir, title=spec.title, file=spec.file,
                      components=spec.components, check_timeout=spec.check_timeout, time_budget=spec.time_budget,
                      due=spec.due)


def notebook_name(assignment: str) -> str:
    """The notebook of an assignment, named after it: hw1.ipynb."""
    return f"{assignment}.ipynb"


def is_hidden_file(path: Path) -> bool:
    """Hidden checks live in `*_hidden.py` files: the one rule that decides what students never get."""
    return path.stem.endswith("_hidden")


# -- kit.toml -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CourseSection:
    """The `[course]` table of kit.toml."""

    name: str = ""
    suites: str = "suites"
    assignments: str = "."
    solutions: str = ""
    handout: typing.Literal["py", "notebook"] = "py"  # what `kit release` gives students by default


@dataclass(frozen=True)
class LatePolicy:
    """The `[late]` table of kit.toml: what a late submission loses (kit.grader.late applies it)."""

    per_day: float | None = None  # fraction of the maximum score lost per started day late
    per_hour: float | None = None  # ... or per started hour
    cutoff_days: float | None = None  # later than this many days: no points


@dataclass(frozen=True)
class CourseFile:
    course: CourseSection = field(default_factory=CourseSection)
    due: dict[str, datetime] = field(default_factory=dict)  # per assignment, for this offering of the course
    late: LatePolicy | None = None  # no [late] table: no penalty


@dataclass
class Course:
    root: Path
    name: str
    suites: Path
    assignments: Path
    solutions: Path | None
    due: dict[str, datetime] = field(default_factory=dict)  # kit.toml's [due]
    late: LatePolicy | None = None
    handout: str = "py"

    def assignment(self, name: str) -> Assignment:
        suite_dir = self.suites / name
        if not (suite_dir / ASSIGNMENT_FILE).exists():
            known = ", ".join(self.names()) or "none"
            raise SetupError(f"no assignment {name!r} in {self.suites} (known: {known})")
        return load_assignment(suite_dir)

    def names(self) -> list[str]:
        return sorted(p.parent.name for p in self.suites.glob("*/assignment.toml"))

    def due_date(self, assignment: Assignment) -> datetime | None:
        """When `assignment` is due: kit.toml's `[due]` entry if it has one, else assignment.toml's `due`."""
        return self.due.get(assignment.name, assignment.due)


def find_course(start: Path | None = None) -> Course:
    """The course whose kit.toml is in `start` (default: the current folder) or above it."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / COURSE_FILE).is_file():
            return load_course(folder)
    raise SetupError(f"no {COURSE_FILE} in {here} or above: run kit inside a course folder, or pass --course DIR")


def load_course(root: Path) -> Course:
    root = root.resolve()
    file = root / COURSE_FILE
    spec = parse(CourseFile, read_toml(file), file)
    section = spec.course
    course = Course(root=root, name=section.name or root.name, suites=root / section.suites,
                    assignments=root / section.assignments,
                    solutions=root / section.solutions if section.solutions else None, due=spec.due, late=spec.late,
                    handout=section.handout)
    if spec.due:
        known = course.names()
        for name in spec.due:
            if name not in known:
                raise ConfigError(file, f"due.{name}", f"no assignment {name!r} in {course.suites} "
                                                       f"(known: {', '.join(known) or 'none'})")
    if spec.late is not None:
        _check_late(spec.late, file)
    return course


def _check_late(late: LatePolicy, file: Path) -> None:
    if late.per_day is not None and late.per_hour is not None:
        raise ConfigError(file, "late.per_hour", "give per_day or per_hour, not both")
    if late.per_day is None and late.per_hour is None and late.cutoff_days is None:
        raise ConfigError(file, "late", "say what a late submission loses: per_day, per_hour and/or cutoff_days "
                                        "(no [late] table: no penalty)")
    for key in ("per_day", "per_hour"):
        rate = getattr(late, key)
        if rate is not None and not 0 < rate <= 1:
            raise ConfigError(file, f"late.{key}", f"{rate:g} is not a fraction of the maximum score (0 < x <= 1)")
    if late.cutoff_days is not None and late.cutoff_days <= 0:
        raise ConfigError(file, "late.cutoff_days", f"{late.cutoff_days:g} is not a number of days after the due date")
