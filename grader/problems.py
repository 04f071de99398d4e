"""What is wrong with a submission as a whole, in words: said once, the way Python says it, with what to do.

Each function here returns the message of a `Problem` (kit.grader.report). Its first line is a
summary that every check the problem costs repeats (and that fits a table); then the place, as
Python's own traceback shows it (the file and line, or the notebook's cell, the line of source
and a caret under what is wrong); then one line saying what to do.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

MAX_SUMMARY = 120  # characters of an exception's message quoted on a problem's first line

Place = Callable[[str, int], tuple[str, str]]  # (file, line) -> ("hw1.ipynb", "cell 4, line 3")


def plain_place(file: str, line: int) -> tuple[str, str]:
    return file, f"line {line}"


def source_block(file: str, at: str, source: str = "", column: int | None = None, end_column: int | None = None,
                 function: str | None = None) -> list[str]:
    """`  File "my_linear.py", line 7`, the line of source, and a caret from `column` to `end_column` (counted
    from 1, end excluded), as Python prints them; the caret is left out where it would underline the whole line."""
    lines = [f'  File "{file}", {at}' + (f", in {function}" if function else "")]
    stripped = source.lstrip(" \t\f")
    if not stripped.strip():
        return lines
    indent, text = len(source) - len(stripped), stripped.rstrip()
    lines.append(f"    {text}")
    if column is None or column - 1 < indent:
        return lines
    start = column - 1 - indent
    end = end_column - 1 - indent if end_column is not None and end_column > column else start + 1
    end = max(start + 1, min(end, len(text) + 1))
    if start == 0 and end >= len(text) and end_column is not None:
        return lines  # all of it: Python shows no caret either
    pad = "".join(c if c.isspace() else " " for c in text[:start])
    lines.append(f"    {pad}{'^' * (end - start)}")
    return lines


# -- a file that cannot be imported -------------------------------------------------------------------------

ADVICE = {  # by exception class, the first of the exception's classes (most specific first) that has one
    "TabError": "indent with spaces only (4 per level): this line mixes tabs and spaces",
    "IndentationError": "indent each block under the line that opens it, consistently (4 spaces per level)",
    "SyntaxError": "fix the code at the caret (^); Python shows one syntax error at a time, so check again after",
    "ModuleNotFoundError": "check the module's name: a module of your own must be a .py file next to {file}, and "
                           "packages other than torch and numpy may not be installed where your work is graded",
    "ImportError": "check the name imported on that line: the module it comes from does not define it",
    "NameError": "define or import that name above the line that uses it (a file runs from top to bottom)",
    "SystemExit": "do not call exit() or sys.exit() at the top level of {file}: put code that runs your model "
                  "under `if __name__ == \"__main__\":`",
}
ADVICE_ANY = ("the top level of {file} runs when it is imported: keep only definitions there (imports, classes, "
              "functions, constants) and put code that trains, tests or plots under `if __name__ == \"__main__\":`")
ADVICE_NOTEBOOK = ("fix that line: of a notebook, only its definitions (imports, classes, functions, constants) run "
                   "when it is graded, and this one failed")


def import_failed(name: str, error: dict, place: Place = plain_place, *, notebook: bool = False) -> str:
    """`name` (the graded file as the student knows it) could not be imported: the child's `error`
    (kit.grader.replies), its traceback and location already naming the student's files."""
    kind, types = error["type"], error.get("types") or [error["type"]]
    location = error.get("location")
    block: list[str] = []
    if error.get("traceback"):
        block += ["Traceback (most recent call last):", *error["traceback"].rstrip("\n").splitlines()]
    at = ""
    if location is not None:
        file, where = place(location["file"], location["line"])
        at = f" ({file}, {where})"  # as GradedFile.locate says it
        if "SyntaxError" in types:
            block += source_block(file, where, location["source"], location["column"], location["end_column"])
    message = error["message"].strip()
    if "\n" in message or len(message) > MAX_SUMMARY:  # quoted in short on the first line, in full after the place
        first = message.splitlines()[0][:MAX_SUMMARY - 3].rstrip() + "..."
        block.append(f"{kind}: {error['message']}")
    else:  # said once, on the first line, as the last line of Python's traceback says it
        first = message
    advice = next((ADVICE[t] for t in types if t in ADVICE), ADVICE_NOTEBOOK if notebook else ADVICE_ANY)
    summary = f"could not import {name}: {kind}" + (f": {first}" if first else "") + at
    return "\n".join([summary, *block, "So no check could run. What to do: " + advice.format(file=name)])


def syntax_error(name: str, kind: str, message: str, at: str, source: str, column: int | None,
                 end_column: int | None) -> str:
    """A syntax error the grader itself found (a notebook's cell, parsed before anything runs)."""
    error = {"type": kind, "types": [kind, "SyntaxError"], "message": message, "traceback": "",
             "location": {"file": name, "line": 0, "column": column, "end_column": end_column, "source": source}}
    return import_failed(name, error, lambda file, line: (file, at), notebook=True)


# -- a file or a name that is not there ---------------------------------------------------------------------

def _similar(name: str, candidates: list[str]) -> str | None:
    same = [c for c in candidates if c.lower() == name.lower()]
    close = same or difflib.get_close_matches(name, candidates, n=1, cutoff=0.7)
    return close[0] if close else None


def _listed(names: list[str], most: int = 8) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def missing_file(file: str, notebook: str, folder: str, present: list[str]) -> str:
    """Neither the graded file nor its notebook is in `folder`, which holds the .py files and notebooks `present`."""
    lines = [f"{file} (or {notebook}) not found in {folder}"]
    similar = _similar(file, [p for p in present if p.endswith(".py")]) or \
        _similar(notebook, [p for p in present if p.endswith(".ipynb")])
    if similar:
        lines.append(f"That folder holds {similar}: is it your work under another name?")
    elif present:
        lines.append(f"That folder holds {_listed(sorted(present))}.")
    else:
        lines.append("That folder holds no .py file and no notebook.")
    lines.append(f"So no check could run. What to do: save your work as {file} (or {notebook}) in that folder, "
                 f"spelled exactly so, or give kit check the folder that holds it (--path FOLDER).")
    return "\n".join(lines)


def missing_name(file: str, name: str, defined: list[str]) -> str:
    """`file` (the graded file) does not define `name`, a component of the assignment; it defines `defined`."""
    lines = [f"{file} does not define {name}"]
    similar = _similar(name, defined)
    if defined:
        lines.append(f"{file} defines {_listed(defined)}.")
    rename = f" (is {similar} meant to be {name}?)" if similar else ""
    lines.append(f"So no check of {name} could run. What to do: define {name} at the top level of {file}, "
                 f"spelled exactly so{rename}.")
    return "\n".join(lines)


# -- a forbidden API ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Use:
    """One use of a forbidden API: where it is written (static), or that it was called (the runtime guard)."""

    name: str  # the API as the rule names it (torch.nn.functional.linear, threading, ...)
    why: str | None  # why a rule of every assignment forbids it; None for the assignment's own list
    spelled: str = ""  # as the student wrote it
    file: str = ""  # as the student finds it, with `at` ("line 12", "cell 4, line 3"); "" when not located
    at: str = ""
    source: str = ""  # the line of source
    when: str = ""  # for a use that is not located: "while your code ran", "while importing your file"

    @property
    def described(self) -> str:
        """`torch.addmm (my_linear.py, line 21: torch.addmm)`, with why every assignment forbids it if it does."""
        where = f"{self.file}, {self.at}: {self.spelled}" if self.file else f"called {self.when}"
        return f"{self.name} ({self.why}; {where})" if self.why else f"{self.name} ({where})"


def forbidden(who: str, assignment: str, uses: list[Use]) -> str:
    """`who` (a component, or the whole assignment) scores 0 because of `uses`: the first line names every use, the
    rule it breaks and where (the line each of its checks carries); then each use located as Python shows it."""
    lines = [f"{who} scores 0 on every check: it uses a forbidden API: {'; '.join(use.described for use in uses)}"]
    for use in uses:
        rule = f"forbidden in {assignment}" if use.why is None else f"forbidden in every assignment: {use.why}"
        written = f", written {use.spelled}" if use.spelled and use.spelled != use.name else ""
        if use.file:
            lines.append(f"{use.name} ({rule}){written}:")
            column = _column(use.source, use.spelled)
            lines += source_block(use.file, use.at, use.source, column,
                                  column + len(use.spelled) if column is not None else None)
        else:
            lines.append(f"{use.name} ({rule}) was called {use.when}; the call is built as the code runs, "
                         f"so no line can be shown")
    if all(use.why is None for use in uses):
        advice = (f"compute this yourself from basic tensor operations (the handout lists what {assignment} "
                  f"forbids; kit finds a forbidden API however it is spelled or reached)")
    else:
        advice = "remove it: no solution needs it, and it stops kit from checking your code"
    lines.append(f"What to do: {advice}.")
    return "\n".join(lines)


def _column(source: str, spelled: str) -> int | None:
    """The column (from 1) where `spelled` starts in `source`, if it does (a long spelling ends in "...")."""
    text = spelled.removesuffix("...")
    at = source.find(text) if text else -1
    return at + 1 if at >= 0 else None
