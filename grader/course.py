"""Finding a course and its assignments: the course file `kit.toml` and each `assignment.toml`."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

COURSE_FILE = "kit.toml"
ASSIGNMENT_FILE = "assignment.toml"


class SetupError(Exception):
    """Something the user must fix before anything can be graded (exit status 2)."""


@dataclass
class Assignment:
    name: str
    suite_dir: Path
    title: str
    file: str
    check_timeout: float = 10.0
    time_budget: float = 120.0
    forbidden: dict[str, list[str]] = field(default_factory=dict)  # component -> dotted names

    @property
    def module(self) -> str:
        return Path(self.file).stem

    @property
    def helpers_file(self) -> Path | None:
        path = self.suite_dir / "remote.py"
        return path if path.exists() else None

    def all_forbidden(self) -> list[str]:
        return sorted({name for names in self.forbidden.values() for name in names})

    def suite_files(self, hidden: bool) -> list[Path]:
        # public checks first, so a hidden check never runs before a public one in the same child
        files = sorted(self.suite_dir.glob("test_*.py"), key=lambda f: (is_hidden_file(f), f.name))
        return [f for f in files if hidden or not is_hidden_file(f)]


def load_assignment(suite_dir: Path) -> Assignment:
    """The assignment whose suite lives in `suite_dir` (named after the folder)."""
    suite_dir = suite_dir.resolve()  # the child runs elsewhere: every path it is given is absolute
    data = tomllib.loads((suite_dir / ASSIGNMENT_FILE).read_text())
    components = data.get("components", {})
    return Assignment(
        name=suite_dir.name, suite_dir=suite_dir, title=data.get("title", suite_dir.name), file=data["file"],
        check_timeout=float(data.get("check_timeout", 10)), time_budget=float(data.get("time_budget", 120)),
        forbidden={c: list(v.get("forbidden", [])) for c, v in components.items()},
    )


def is_hidden_file(path: Path) -> bool:
    return path.stem.endswith("_hidden")


@dataclass
class Course:
    root: Path
    name: str
    suites: Path
    assignments: Path
    solutions: Path | None

    def assignment(self, name: str) -> Assignment:
        suite_dir = self.suites / name
        if not (suite_dir / ASSIGNMENT_FILE).exists():
            known = ", ".join(self.names()) or "none"
            raise SetupError(f"no assignment {name!r} in {self.suites} (known: {known})")
        return load_assignment(suite_dir)

    def names(self) -> list[str]:
        return sorted(p.parent.name for p in self.suites.glob("*/assignment.toml"))


def find_course(start: Path | None = None) -> Course:
    """The course whose kit.toml is in `start` (default: the current folder) or above it."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / COURSE_FILE).is_file():
            return load_course(folder)
    raise SetupError(f"no {COURSE_FILE} in {here} or above: run kit inside a course folder, or pass --course DIR")


def load_course(root: Path) -> Course:
    root = root.resolve()
    data = tomllib.loads((root / COURSE_FILE).read_text()).get("course", {})
    solutions = data.get("solutions")
    return Course(root=root, name=data.get("name", root.name), suites=root / data.get("suites", "suites"),
                  assignments=root / data.get("assignments", "."),
                  solutions=root / solutions if solutions else None)
