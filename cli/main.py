"""`kit`: the command students, instructors and CI run.

Each command imports its heavy machinery (torch, pytest, nbgrader) only when it runs,
so `kit --help` is instant and `kit check` pays for nothing it does not use.
"""
from __future__ import annotations

import click

from .check import check
from .collect import collect
from .export import export
from .feedback import feedback
from .grade import grade
from .gradescope import gradescope
from .release import release


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kit")
def main() -> None:
    """Autograded PyTorch exercises: check your work, or grade a class."""


main.add_command(check)
main.add_command(release)
main.add_command(collect)
main.add_command(grade)
main.add_command(export)
main.add_command(feedback)
main.add_command(gradescope)
