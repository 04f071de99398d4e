"""`kit`: the command students, instructors and CI run.

Each command imports its heavy machinery (torch, pytest, nbgrader) only when it runs,
so `kit --help` is instant and `kit check` pays for nothing it does not use.
"""
from __future__ import annotations

import os
import sys

import click

from .check import check
from .collect import collect
from .export import export
from .extend import extend
from .feedback import feedback
from .grade import grade
from .gradescope import gradescope
from .late import late
from .options import KitGroup
from .release import release
from .report import report
from .similarity import similarity


@click.group(cls=KitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kit")
def cli() -> None:
    """Autograded PyTorch exercises: check your work, or grade a class."""


for command in (check, release, collect, grade, late, extend, export, feedback, report, gradescope, similarity):
    cli.add_command(command)


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
