"""Student ids: where they come from (an LMS file name) and which ones may become folder names."""
from __future__ import annotations

import re

# Student ids become folder names: letters, digits and a few separators, never a path.
STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}")
# Default: the student id is the start of the file name, up to the first `_`, space or dot-extension
# (`jdoe.zip`, `jdoe_hw1.zip`, Canvas' `doejohn_12345_67890_hw1.zip`, `jdoe - hw1.zip`).
DEFAULT_PATTERN = r"^(?P<student>[A-Za-z0-9][A-Za-z0-9.@+-]*?)(?:[_ ]|\.zip$)"


def valid_student(student: str) -> bool:
    """Whether `student` can name a folder under `submitted/` (no separators, no `..`)."""
    return bool(STUDENT_ID.fullmatch(student)) and student not in (".", "..")


def compile_pattern(pattern: str) -> re.Pattern:
    """The file-name pattern, which must name the student: ValueError (or re.error) otherwise."""
    regex = re.compile(pattern)
    if "student" not in regex.groupindex:
        raise ValueError("the pattern needs a named group (?P<student>...)")
    return regex
