"""`kit`: the command students, instructors and CI run.

Each command imports its heavy machinery (torch, pytest, nbgrader) only when it runs,
so `kit --help` is instant and `kit check` pays for nothing it does not use.
"""
from __future__ import annotations

import os
import sys

import click

from .options import KitGroup

COMMANDS = ("check", "release", "collect", "grade", "late", "extend", "export", "feedback", "report", "gradescope",
            "similarity")


@click.group(cls=KitGroup, lazy={name: f".{name}:{name}" for name in COMMANDS},
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kit")
def cli() -> None:
    """Autograded PyTorch exercises: check your work, or grade a class."""


def main() -> None:
    """The console script: run the command, then exit without tearing torch down (a few hundred ms)."""
    try:
        cli.main(prog_name="kit")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
