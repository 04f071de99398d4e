"""What every command shares: its options, how it finds the course, and how it fails.

Errors leave one way: a `KitError` (a click.ClickException with exit status 2) that click
prints as "Error: ...". kit.grader's `SetupError` (a missing course, a bad assignment.toml, no
sandbox) becomes one in `KitGroup`, so commands simply let it rise.
"""
from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from pathlib import Path

import click

from kit.grader.course import Course, SetupError, find_course, load_course


class KitError(click.ClickException):
    """A usage or setup error: what to fix, exit status 2."""

    exit_code = 2


class KitGroup(click.Group):
    """kit's command group: each command's module is imported when that command runs (click's lazy
    group: `kit check` pays nothing for the instructors' commands), and a SetupError from the library
    is reported like a usage error.

    `lazy` maps a command's name to "module:attribute", relative to this package.
    """

    def __init__(self, *args, lazy: dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy:
            return super().get_command(ctx, name)
        module, attribute = self.lazy[name].split(":")
        return getattr(importlib.import_module(module, __package__), attribute)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SetupError as exc:
            raise KitError(str(exc)) from None


def with_course(command: Callable) -> Callable:
    """Add --course and pass the command the `course` it names (default: found from the current folder)."""

    @click.option("--course", "course_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
                  help="Course folder holding kit.toml (default: the current folder or above).")
    @functools.wraps(command)
    def wrapper(*args, course_dir: Path | None, **kwargs):
        return command(*args, course=resolve_course(course_dir), **kwargs)

    return wrapper


def resolve_course(course_dir: Path | None) -> Course:
    return load_course(course_dir.resolve()) if course_dir else find_course()


db_option = click.option("--db", help="Gradebook: an SQLAlchemy URL or a SQLite file (default: COURSE/gradebook.db).")
students_option = click.option("--student", "students", multiple=True, metavar="ID",
                               help="Only this student (repeatable).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of a table.")


def gradebook_url(course: Course | None, db: str | None, *, must_exist: str | None = None) -> str:
    """The gradebook's SQLAlchemy URL; with `must_exist`, a missing SQLite file is an error that says to run it."""
    from kit.grader.gradebook import db_url

    url = db_url(course.root if course else Path.cwd(), db)
    path = url.removeprefix("sqlite:///")
    if must_exist and url.startswith("sqlite:///") and not Path(path).is_file():
        raise KitError(f"no gradebook at {path} ({must_exist})")
    return url
