"""Notebooks for the tests, written by nbformat as Jupyter writes them (sources as lists of lines)."""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from kit.grader.release import code_sections

# A cell a student runs to try their code: never run when grading.
DEMO = """\
%matplotlib inline
print("trying it out")
for step in range(3):
    print(step)
!echo a shell command
"""


def notebook(cells: list[str], *, text_first: bool = True, metadata: dict | None = None) -> str:
    """The notebook JSON of these code cells, after a markdown cell (so code cell k is cell k + 1)."""
    parts = [new_markdown_cell("# My work", id="intro")] if text_first else []
    parts += [new_code_cell(source, id=f"code-{k}") for k, source in enumerate(cells, start=1)]
    nb = new_notebook(cells=parts, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                            "display_name": "Python 3"}, **(metadata or {})})
    return nbformat.writes(nb)


def write_notebook(path: Path, cells: list[str], **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(notebook(cells, **kwargs), encoding="utf-8")
    return path


def cells_of(source: str) -> list[str]:
    """A module's code split into cells as a handout splits it (imports, then a cell per class or function),
    a demo cell after them; the whole source in one cell if it does not parse."""
    try:
        return [text for _, text in code_sections(source)] + [DEMO]
    except SyntaxError:
        return [source, DEMO]
