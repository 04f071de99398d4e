"""Notebooks as submissions: read one without trusting it, keep its definitions, say where things are.

A notebook is graded as the module it defines, and nothing in it is run to find out what that
is: its code cells are parsed (after IPython's own rewriting of magics into calls), and of each
cell's top-level statements kit keeps what defines things — imports, functions, classes, and
assignments of constants — and leaves out what does work: calls, loops, prints, training,
plotting, magics and shell escapes. What is kept becomes the graded module, line by line as the
student wrote it, so a traceback or a forbidden API found in it can be pointed back at
"cell N, line M" (`SourceMap`). Stored outputs are never looked at.

Reading is strict (`read_cells`): the bytes must be UTF-8 JSON of nbformat 4, a Python kernel,
cells with text sources and, from nbformat 4.5 on, unique cell ids. Anything else is a
`NotebookError` whose message says what is wrong and how to fix it: the submission cannot be
graded, and scores zero.

No torch, and no nbformat here (nbformat takes a second to import, more than `kit check` itself).
"""
from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import json
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .files import read_regular

MAX_BYTES = 64 << 20  # a notebook over this is not graded (a 40 MB plot output is fine)
MAX_CELLS = 10_000
CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # nbformat 4.5's pattern
SHOWN_LEFT_OUT = 8  # statements named in the one-line note; the rest are counted
# Cell magics that run the cell below them as Python, in the notebook's namespace: the cell is read
PYTHON_CELL_MAGIC = re.compile(r"^%%(time|capture)(\s.*)?$")


class NotebookError(ValueError):
    """A notebook that cannot be graded; the message says why, for the student."""


class CellSyntaxError(NotebookError):
    """A cell Python cannot parse: where (`cell 4, line 3`), the line of source and the columns of the error."""

    def __init__(self, kind: str, message: str, where: str, source: str, column: int | None,
                 end_column: int | None) -> None:
        super().__init__(f"{kind}: {message} ({where})")
        self.kind, self.message, self.where = kind, message, where
        self.source, self.column, self.end_column = source, column, end_column


@dataclass(frozen=True)
class Cell:
    """A code cell: `number` counts every cell from the top, text cells included, starting at 1."""

    number: int
    source: str


@dataclass(frozen=True)
class Notebook:
    cells: list[Cell]  # code cells only
    metadata: dict


# -- reading ---------------------------------------------------------------------------------------

def read_cells(path: Path) -> Notebook:
    """The code cells of the notebook at `path` (a regular file, never a link or a pipe)."""
    try:
        data = read_regular(path, MAX_BYTES + 1)
    except OSError as exc:
        raise NotebookError(f"cannot be read ({exc.strerror or exc})") from None
    return parse(data)


def parse(data: bytes) -> Notebook:
    """The code cells of a notebook given as bytes; NotebookError for anything that is not one."""
    if len(data) > MAX_BYTES:
        raise NotebookError(f"is larger than {MAX_BYTES >> 20} MiB; clear its outputs (Edit > Clear All Outputs, "
                            "or Kernel > Restart & Clear Output), save it and hand it in again")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise NotebookError(f"is not valid UTF-8 text (byte {exc.start}); a notebook saved by Jupyter always is: "
                            "hand in the .ipynb file Jupyter saved, not a converted or edited copy") from None
    if not text.strip():
        raise NotebookError("is empty")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):  # ran out of text
            raise NotebookError("is cut off: the file ends in the middle of the notebook (was it saved or "
                                "uploaded completely?)") from None
        raise NotebookError(f"is not a notebook: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
                            ) from None
    except RecursionError:
        raise NotebookError("is not a notebook: its JSON is nested too deeply") from None
    if not isinstance(doc, dict) or "cells" not in doc and "worksheets" not in doc:
        raise NotebookError("is not a notebook: JSON, but without the cells of one")
    version, minor = doc.get("nbformat"), doc.get("nbformat_minor", 0)
    if isinstance(version, int) and not isinstance(version, bool) and version < 4:
        raise NotebookError(f"is in the old notebook format {version} (IPython 2 or earlier); open it in Jupyter and "
                            "save it, which converts it to format 4, then hand it in again")
    if version != 4 or not isinstance(minor, int) or isinstance(minor, bool) or minor < 0:
        raise NotebookError(f"has an unknown notebook format ({version!r}.{minor!r}); kit reads format 4, "
                            "which Jupyter, JupyterLab, VS Code and Colab write")
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict):
        raise NotebookError("is not a valid notebook: its metadata is not a JSON object")
    check_language(metadata)
    cells = doc.get("cells")
    if not isinstance(cells, list):
        raise NotebookError("is not a valid notebook: its cells are not a list")
    if len(cells) > MAX_CELLS:
        raise NotebookError(f"has more than {MAX_CELLS} cells")
    return Notebook(code_cells(cells, needs_ids=minor >= 5), metadata)


def check_language(metadata: dict) -> None:
    """The notebook must run Python: its kernel's language, when it says one."""
    spec, info = metadata.get("kernelspec"), metadata.get("language_info")
    language = spec.get("language") if isinstance(spec, dict) else None
    if not language and isinstance(info, dict):
        language = info.get("name")
    if language is None:
        return
    if not isinstance(language, str) or language.strip().lower() not in ("python", "python3", "ipython"):
        name = spec.get("display_name") if isinstance(spec, dict) else None
        kernel = f"{language}" + (f" ({name})" if isinstance(name, str) and name else "")
        raise NotebookError(f"has a kernel for {kernel}, not Python; kit grades Python notebooks: choose a Python "
                            "kernel (Kernel > Change Kernel), save and hand it in again")


def code_cells(cells: list, *, needs_ids: bool) -> list[Cell]:
    out: list[Cell] = []
    seen: dict[str, int] = {}
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise NotebookError(f"is not a valid notebook: cell {number} is not a code, markdown or raw cell")
        if needs_ids:
            cell_id = cell.get("id")
            if not isinstance(cell_id, str) or not CELL_ID.match(cell_id):
                what = "has no id" if cell_id is None else "has an id that is not valid"
                raise NotebookError(f"is not a valid notebook: cell {number} {what} (nbformat 4.5 and later give "
                                    "every cell one); open the notebook in Jupyter and save it, which repairs it")
            if cell_id in seen:
                raise NotebookError(f"is not a valid notebook: cells {seen[cell_id]} and {number} have the same id "
                                    f"{cell_id!r}; open the notebook in Jupyter and save it, which repairs it")
            seen[cell_id] = number
        if cell["cell_type"] == "code":
            out.append(Cell(number, source_text(cell.get("source", ""), number)))
    return out


def source_text(source, number: int) -> str:
    """A cell's source: nbformat allows one string or a list of strings (lines), nothing else."""
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(part, str) for part in source):
        return "".join(source)
    raise NotebookError(f"is not a valid notebook: the source of cell {number} is neither text nor a list of lines")


# -- keeping the definitions -----------------------------------------------------------------------

@dataclass(frozen=True)
class LeftOut:
    """Top-level statements of a cell that were not graded."""

    cell: int
    first: int
    last: int
    text: str  # the statement's first line, as written

    def describe(self) -> str:
        lines = f"line {self.first}" if self.first == self.last else f"lines {self.first}-{self.last}"
        text = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        return f"cell {self.cell} {lines} `{text}`"


@dataclass(frozen=True)
class Module:
    """The graded module a notebook defines, and where each of its lines came from."""

    source: str
    lines: tuple[tuple[int, int], ...]  # line k+1 of `source` is (cell, line) of the notebook
    left_out: tuple[LeftOut, ...]
    digest: str  # of its definitions, as `definitions_digest` computes it


def convert(cells: Iterable[Cell]) -> Module:
    """The module of `cells`' definitions; NotebookError (a SyntaxError, located) if a cell cannot be parsed."""
    future: list[tuple[str, list[tuple[int, int]]]] = []
    body: list[tuple[str, list[tuple[int, int]]]] = []
    left_out: list[LeftOut] = []
    kept: list[ast.stmt] = []
    bound = Scope()
    for cell in cells:
        source, offset = cell.source, 0
        head, _, rest = source.partition("\n")
        if PYTHON_CELL_MAGIC.match(head):  # `%%time` runs the cell below it as Python: read that
            left_out.append(LeftOut(cell.number, 1, 1, head.strip()))
            source, offset = rest, 1
        with warnings.catch_warnings():  # IPython's and the compiler's warnings are for the student's kernel
            warnings.simplefilter("ignore")
            python = ipython_to_python(source)
            tree = parse_cell(python, cell.number, offset)
        text = lines_of(python)
        original = lines_of(source)
        for node in tree.body:
            first = first_line(node)
            if bound.keeps(node):
                kept.append(node)
                segment = source_of(text, node, first)
                lines = [(cell.number, offset + first + k) for k in range(segment.count("\n") + 1)]
                is_future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
                (future if is_future else body).append((segment, lines))
            elif not is_inert(node):
                shown = original[first - 1].strip() if first <= len(original) else ""
                # IPython turns a cell magic (%%bash) and the whole cell under it into one line
                last = len(source.rstrip().splitlines()) if magic_of(node) == "run_cell_magic" else \
                    node.end_lineno or first
                left_out.append(LeftOut(cell.number, offset + first, offset + last, shown))
    source, where = [], []
    for segment, lines in future + body:
        source.append(segment)
        where += lines
    return Module("\n".join(source) + "\n" if source else "", tuple(where), tuple(left_out), digest_of(kept))


def ipython_to_python(source: str) -> str:
    """A cell as IPython would run it: magics and shell escapes become calls, line for line."""
    try:
        return transformer().transform_cell(source)
    except (SyntaxError, ValueError, IndexError, TypeError):
        return source  # the parse that follows reports it


@functools.cache
def transformer():
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


def parse_cell(python: str, number: int, offset: int = 0) -> ast.Module:
    """The cell's statements; a SyntaxError as a NotebookError naming the cell and line (`offset` lines above)."""
    try:
        return compile(python, f"cell {number}", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                       dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        kind = type(exc).__name__
        message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        line = getattr(exc, "lineno", None)
        where = f"cell {number}, line {line + offset}" if line else f"cell {number}"
        if not isinstance(exc, SyntaxError):
            raise NotebookError(f"{kind}: {message} ({where})") from None
        same_line = exc.end_lineno in (None, exc.lineno)
        raise CellSyntaxError(kind, message, where, (exc.text or "").rstrip("\r\n"), exc.offset,
                              exc.end_offset if same_line else None) from None


def lines_of(text: str) -> list[str]:
    """Lines as Python numbers them (str.splitlines would also split at form feeds and other separators)."""
    return re.split(r"\r\n?|\n", text)


def first_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", None) or []
    return min([node.lineno, *(d.lineno for d in decorators)])


def source_of(lines: list[str], node: ast.stmt, first: int) -> str:
    """The statement's text (its decorators included), cut out of a line shared with another statement."""
    last = node.end_lineno or first
    encoded = [line.encode("utf-8") for line in lines[first - 1:last]]
    start = 0 if first != node.lineno else node.col_offset  # decorators start their line
    if len(encoded) == 1:
        return encoded[0][start:node.end_col_offset].decode("utf-8")
    encoded[0] = encoded[0][start:]
    encoded[-1] = encoded[-1][:node.end_col_offset]
    return "\n".join(part.decode("utf-8") for part in encoded)


def is_inert(node: ast.stmt) -> bool:
    """A statement whose leaving out is not worth a mention: a docstring, `pass`, `...`, and kit's own
    `%load_ext kit.cli` and `%kit ...` (the handout's last cell)."""
    if isinstance(node, ast.Pass) or isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return True
    if magic_of(node) != "run_line_magic" or len(node.value.args) != 2:
        return False
    magic, argument = (a.value if isinstance(a, ast.Constant) else None for a in node.value.args)
    return magic == "kit" or magic == "load_ext" and argument == "kit.cli"


def magic_of(node: ast.stmt) -> str | None:
    """`run_line_magic`, `run_cell_magic`, `system`...: what IPython made of a magic or a shell escape."""
    call = node.value if isinstance(node, ast.Expr) else None
    if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Call) \
            and isinstance(call.func.value.func, ast.Name) and call.func.value.func.id == "get_ipython":
        return call.func.attr
    return None


# Expressions that only name or build values: evaluating one defines a constant, never does work.
PLAIN = (ast.Constant, ast.Name, ast.Attribute, ast.Subscript, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.UnaryOp,
         ast.BinOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Lambda, ast.JoinedStr, ast.FormattedValue, ast.Starred,
         ast.Slice, ast.Load, ast.Store, ast.expr_context, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
         ast.arguments, ast.arg, ast.keyword)


class Scope:
    """What the kept statements have bound so far, and which statements to keep."""

    def __init__(self) -> None:
        self.names = set(dir(builtins)) | {"__name__", "__file__", "__doc__", "__spec__", "__loader__"}
        self.anything = False  # a `from m import *` was kept: any name may be bound

    def keeps(self, node: ast.stmt) -> bool:
        """Whether `node` defines something (and binds its names if so)."""
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    self.anything = True
                else:
                    self.names.add(alias.asname or alias.name.split(".")[0])
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.names.add(node.name)
            return True
        if isinstance(node, ast.Assign):
            parts = [*node.targets, node.value]
        elif isinstance(node, ast.AnnAssign):
            parts = [node.target, node.annotation] + ([node.value] if node.value is not None else [])
        elif isinstance(node, ast.Try):
            return self.keeps_try(node)
        else:
            return False
        if not all(self.plain(part) for part in parts):
            return False
        for target in parts[:-1] if isinstance(node, ast.Assign) else [node.target]:
            self.names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name)
                              and isinstance(n.ctx, ast.Store))
        return True

    def keeps_try(self, node: ast.Try) -> bool:
        """`try: import x / except ImportError: x = None`: kept when every statement in it would be."""
        before = (set(self.names), self.anything)
        inner = [*node.body, *node.orelse, *node.finalbody, *(s for h in node.handlers for s in h.body)]
        types = [h.type for h in node.handlers if h.type is not None]
        if all(self.plain(t) for t in types) and all(self.keeps(s) or is_inert(s) for s in inner):
            return True
        self.names, self.anything = before
        return False

    def plain(self, expr: ast.AST) -> bool:
        """Only names and constants, every name it reads already bound (a lambda's body reads later)."""
        for node in walk_outside_lambda_bodies(expr):
            if not isinstance(node, PLAIN):
                return False
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and not self.bound(node.id):
                return False
        return True

    def bound(self, name: str) -> bool:
        return self.anything or name in self.names


def walk_outside_lambda_bodies(expr: ast.AST) -> Iterable[ast.AST]:
    todo = [expr]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.Lambda):
            todo.append(node.args)  # defaults are evaluated now; the body only when called
        else:
            todo.extend(ast.iter_child_nodes(node))


def digest_of(statements: Iterable[ast.stmt]) -> str:
    h = hashlib.sha256()
    for node in statements:
        h.update(ast.dump(node, include_attributes=False).encode() + b"\0")
    return "sha256:" + h.hexdigest()


def definitions_digest(source: str) -> str:
    """A fingerprint of what a module or a cell's source defines (what a notebook of it would be graded on):
    the same for a .py file and a notebook of its statements, blind to comments, layout and demo code."""
    try:
        return convert([Cell(1, source)]).digest
    except NotebookError:
        return "unparsable:" + hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


def left_out_note(name: str, left_out: Iterable[LeftOut]) -> str:
    """One line: what of notebook `name` was not graded."""
    items = list(left_out)
    shown = ", ".join(item.describe() for item in items[:SHOWN_LEFT_OUT])
    more = f", and {len(items) - SHOWN_LEFT_OUT} more" if len(items) > SHOWN_LEFT_OUT else ""
    return (f"{name}: only its definitions were graded (imports, functions, classes, constants); "
            f"left out, never run: {shown}{more}")


# -- pointing back into the notebook ---------------------------------------------------------------

@dataclass(frozen=True)
class SourceMap:
    """Where each line of the graded module came from: messages name cells, never the generated file."""

    notebook: str  # how the student knows it: hw1.ipynb
    generated: str  # the graded module's file name: my_linear.py
    lines: tuple[tuple[int, int], ...]

    def where(self, line: int) -> str:
        if 1 <= line <= len(self.lines):
            cell, in_cell = self.lines[line - 1]
            return f"cell {cell}, line {in_cell}"
        return f"line {line}"

    def relocate(self, text: str) -> str:
        """`text` with every `"my_linear.py", line 12` (a traceback's, a SyntaxError's) naming the cell instead."""
        pattern = re.compile(r'(?P<q>"?)' + re.escape(self.generated) + r'(?P=q), line (?P<line>\d+)')
        return pattern.sub(lambda m: f"{m['q']}{self.notebook}{m['q']}, {self.where(int(m['line']))}", text)
