"""Similarity between submissions: pairs that share unusually much code, as evidence for a person to read.

Each submission's graded code is normalised before it is compared, so the usual disguises
change nothing: comments, docstrings, type annotations, imports and formatting (line breaks,
trailing commas, grouping parentheses, how a number is spelled) are dropped; every name the
submission itself binds (variables, arguments, functions, classes, attributes it assigns)
becomes `V`, while the names it only uses (torch's API, builtins) stay; string literals
become `S`; the statements of a module and of each class body are put in a canonical order
(sorted by their normalised text), so reordering methods or functions changes nothing either.

The normalised token streams are fingerprinted by winnowing (Schleimer, Wilkerson and
Aiken, "Winnowing: local algorithms for document fingerprinting", SIGMOD 2003): hashes of
every run of `k` tokens, of which each window of `w` consecutive hashes keeps its smallest,
so any match of at least k + w - 1 tokens is found. Fingerprints of the released stub are
boilerplate (the handout's signatures, which every student writes the same way), and so are
those that more than a share of the class has (code everyone writes alike): both are left
out. Pairs are counted through an index of fingerprints (the product of the submissions x
shared fingerprints matrix with itself, never a text compared with another), so a class of
500 takes seconds.

A pair's similarity is the share of the smaller submission's fingerprints that the other
holds too (at least `MIN_FINGERPRINTS` are counted, so two nearly empty submissions are not
"the same"). Nothing here is a verdict: a flagged pair is a pair a person should read.
"""
from __future__ import annotations

import ast
import builtins
import io
import keyword
import tokenize
import zlib
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path

from .course import Assignment
from .files import read_regular

K = 12  # tokens per k-gram: shorter runs are too common to mean anything
WINDOW = 6  # winnowing window: every match of K + WINDOW - 1 = 17 tokens or more is seen
MIN_FINGERPRINTS = 15  # a submission with fewer counts as this many (tiny ones are not "identical")
THRESHOLD = 0.6  # flagged from this similarity on (bench/README.md: what it flags in a class of 500)
COMMON = 0.2  # fingerprints in more than this share of the class (and more than COMMON_FLOOR) are left out
COMMON_FLOOR = 10
MAX_BYTES = 1 << 20  # of the graded file: larger ones are compared on their first megabyte

_BUILTINS = frozenset(dir(builtins))
_DROP = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                   tokenize.ENCODING, tokenize.ENDMARKER})
_FSTRING_START = getattr(tokenize, "FSTRING_START", -1)  # Python 3.12 tokenizes f-strings
_FSTRING_END = getattr(tokenize, "FSTRING_END", -2)
_FSTRING_REST = {getattr(tokenize, "FSTRING_MIDDLE", -3), _FSTRING_END}


@dataclass
class Code:
    """One submission's code, normalised: tokens in canonical order, each with the source lines it came from."""

    student: str
    text: str  # the source as handed in
    tokens: list[str]
    lines: list[tuple[int, int]]  # per token: its first and last line in `text` (1-based)
    note: str = ""  # why it was compared less well, or not at all


@dataclass(frozen=True)
class Pair:
    students: tuple[str, str]
    similarity: float  # 0..1
    shared: int  # fingerprints in common
    shares: tuple[float, float]  # the share of each one's fingerprints found in the other
    flagged: bool


@dataclass
class Comparison:
    """Every pair of a class that shares code, most similar first, and what each submission was reduced to."""

    assignment: str
    codes: dict[str, Code]
    fingerprints: dict[str, dict[int, list[int]]]  # per student: hash -> token positions, boilerplate left out
    pairs: list[Pair]
    threshold: float
    common_share: float  # code found in more than this share of the class counts as everyone's
    boilerplate: int  # fingerprints left out as the stub's
    common: int  # fingerprints left out as everyone's
    notes: list[str] = field(default_factory=list)

    def json(self, minimum: float = 0.0) -> dict:
        return {"assignment": self.assignment, "threshold": self.threshold,
                "pairs": [{"students": list(p.students), "similarity": round(p.similarity, 4),
                           "flagged": p.flagged, "shared": p.shared, "shares": [round(s, 4) for s in p.shares]}
                          for p in self.pairs if p.similarity >= minimum or p.flagged],
                "notes": self.notes}

    def regions(self, pair: Pair) -> list[tuple[set[int], set[int]]]:
        """The matching regions of a pair: the lines of each region in the first student's code and in the second's."""
        a, b = pair.students
        fa, fb = self.fingerprints[a], self.fingerprints[b]
        hits = sorted((pa, pb) for h in fa.keys() & fb.keys() for pa in fa[h][:1] for pb in fb[h][:1])
        blocks: list[list[int]] = []  # [a start, a end, b start, b end] in token positions
        for pa, pb in hits:
            last = blocks[-1] if blocks else None
            if last and pa <= last[1] + WINDOW and last[2] - WINDOW <= pb <= last[3] + WINDOW:
                last[1], last[2], last[3] = max(last[1], pa + K), min(last[2], pb), max(last[3], pb + K)
            else:
                blocks.append([pa, pa + K, pb, pb + K])
        ca, cb = self.codes[a], self.codes[b]
        return [(_lines(ca, s, e), _lines(cb, t, u)) for s, e, t, u in blocks]


def _lines(code: Code, start: int, end: int) -> set[int]:
    """The source lines of tokens start..end (in canonical order, so possibly far apart in the file)."""
    return {n for first, last in code.lines[start:end] for n in range(first, last + 1)}


def line_ranges(lines: set[int]) -> str:
    """{3, 4, 5, 9} as "3–5, 9"."""
    out, run = [], []
    for n in sorted(lines):
        if run and n != run[-1] + 1:
            out.append(run)
            run = []
        run.append(n)
    if run:
        out.append(run)
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 1 else str(r[0]) for r in out)


# -- reading and normalising ---------------------------------------------------------------------------

def submission_code(folder: Path, filename: str) -> tuple[str, str]:
    """(source, note) of the code kit grades in `folder`: the graded file.

    Notebooks plug in here: when the graded file is a notebook, this is where its graded cells
    become one source (kit.grader.notebook's extraction, the same code `kit grade` runs).
    """
    path = folder / filename
    try:
        data = read_regular(path, MAX_BYTES)
    except FileNotFoundError:
        return "", f"no {filename}"
    except OSError as exc:
        return "", f"{filename} cannot be read ({exc.strerror or exc})"
    return data.decode("utf-8", errors="replace"), ""


def normalize(student: str, source: str) -> Code:
    """`source` as the comparison sees it (see the module's docstring)."""
    raw = _tokens(source)
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        tree = None
    if tree is None:  # still compared, token by token, on a guess at which names are its own
        own = {t.string for t in raw if t.type == tokenize.NAME} - _BUILTINS
        texts = _grouping_dropped(raw, [_text(raw, i, own, {}) for i in range(len(raw))])
        order = list(range(len(raw)))
        note = "not valid Python: compared without reordering"
    else:
        texts = _texts(tree, raw)
        order = _canonical_order(tree, raw, texts)
        note = ""
    kept = [i for i in order if texts[i] is not None]
    return Code(student, source, [texts[i] for i in kept], [(raw[i].start[0], raw[i].end[0]) for i in kept], note)


def _tokens(source: str) -> list[tokenize.TokenInfo]:
    """The significant tokens of `source`, as far as it can be tokenized."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type not in _DROP:
                out.append(tok)
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


def _texts(tree: ast.Module, raw: list[tokenize.TokenInfo]) -> list[str | None]:
    """Each token as compared (None: left out), from one walk over the syntax tree.

    A name the code binds itself (a variable, an argument, a function, a class, an import's
    alias) is `V`. An attribute is `V` when the code assigns it or defines it (`self.conv1`,
    `self._make_layer`), and keeps its name when it belongs to an imported module's API
    (`nn.Conv2d`, `F.relu`, whatever the student called the module). A keyword argument is `V`
    in a call of the student's own function and keeps its name in a call of anything else
    (`kernel_size=3`), so renaming one's own parameters changes nothing either way.
    Docstrings, annotations (with their `:` or `->`) and imports are left out.
    """
    own, imported, members, defined = set(), set(), set(), set()
    attributes, keywords, dropped = [], [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            own.add(node.name)
            defined.add(node.name)
            if node.body and _is_docstring(node.body[0]):
                dropped.append((node.body[0], False))
            if isinstance(node, ast.ClassDef):
                members.update(t.id for stmt in node.body for t in _targets(stmt))
            elif node.returns is not None:
                dropped.append((node.returns, True))
        elif isinstance(node, ast.arg):
            own.add(node.arg)
            if node.annotation is not None:
                dropped.append((node.annotation, True))
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            own.add(node.id)
        elif isinstance(node, ast.Attribute):
            attributes.append(node)
            if isinstance(node.ctx, ast.Store):
                members.add(node.attr)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = {a.asname or a.name.split(".")[0] for a in node.names}
            own.update(names)
            imported.update(names)
            dropped.append((node, False))
        elif isinstance(node, ast.Call):
            func = node.func
            callee = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            keywords += [(k, callee) for k in node.keywords if k.arg]
        elif isinstance(node, ast.AnnAssign):
            dropped.append((node.annotation, True))
        elif isinstance(node, ast.ExceptHandler) and node.name:
            own.add(node.name)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            own.update(node.names)
        elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            own.add(node.name)
    if _is_docstring(tree.body[0] if tree.body else None):
        dropped.append((tree.body[0], False))
    override: dict[tuple[int, int], str] = {}
    for node in attributes:
        root = node.value
        while isinstance(root, ast.Attribute):
            root = root.value
        api = isinstance(root, ast.Name) and root.id in imported
        where = (node.end_lineno, node.end_col_offset - len(node.attr))
        override[where] = node.attr if api or node.attr not in members | defined else "V"
    for kw, callee in keywords:
        override[(kw.lineno, kw.col_offset)] = "V" if callee in defined else kw.arg
    texts = _grouping_dropped(raw, [_text(raw, i, own - set(keyword.kwlist), override) for i in range(len(raw))])
    starts = [t.start for t in raw]
    for node, with_marker in dropped:
        i, j = _span(starts, node)
        texts[i:j] = [None] * (j - i)
        if with_marker and i > 0 and raw[i - 1].string in (":", "->"):
            texts[i - 1] = None
    return texts


def _is_docstring(node: ast.AST | None) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def _targets(stmt: ast.stmt) -> list[ast.Name]:
    """The names a statement of a class body assigns (class attributes such as `expansion = 1`)."""
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(
        stmt, ast.AnnAssign | ast.AugAssign) else []
    return [t for t in targets if isinstance(t, ast.Name)]


def _text(raw: list[tokenize.TokenInfo], i: int, own: set[str], override: dict[tuple[int, int], str]) -> str | None:
    tok = raw[i]
    if tok.type == tokenize.NAME:
        if tok.start in override:
            return override[tok.start]
        return "V" if tok.string in own else tok.string
    if tok.type == tokenize.STRING or tok.type == _FSTRING_START:
        after_string = i > 0 and raw[i - 1].type in (tokenize.STRING, _FSTRING_END)
        return None if after_string else "S"  # "a" "b" is one string
    if tok.type in _FSTRING_REST:
        return None
    if tok.type == tokenize.NUMBER:
        return _number(tok.string)
    if tok.string == "," and i + 1 < len(raw) and raw[i + 1].string in (")", "]", "}"):
        return None  # a trailing comma is formatting
    return tok.string


def _grouping_dropped(raw: list[tokenize.TokenInfo], texts: list[str | None]) -> list[str | None]:
    """`texts` without the parentheses that only group (`(a + b)`, `return (x, y)`, `((1 - p) ** g)`), which
    formatting adds and removes at will; those of calls and definitions stay."""
    opened: list[int | None] = []
    for i, tok in enumerate(raw):
        if tok.string == "(":
            before = raw[i - 1] if i else None
            call = before is not None and (before.string in (")", "]") or before.type == tokenize.STRING or (
                before.type == tokenize.NAME and not keyword.iskeyword(before.string)))
            opened.append(None if call else i)
        elif tok.string == ")" and opened:
            group = opened.pop()
            if group is not None:
                texts[group] = texts[i] = None
    return texts


def _number(text: str) -> str:
    """A number literal spelled one way: 1e-5 and 1e-05, 0x10 and 16, 1_000 and 1000 are the same."""
    for parse in (lambda t: int(t, 0), float, complex):
        try:
            return repr(parse(text))
        except ValueError:
            continue
    return text


def _start(node: ast.AST) -> tuple[int, int]:
    decorators = getattr(node, "decorator_list", None)
    first = decorators[0] if decorators else node
    line, col = first.lineno, first.col_offset
    return (line, col - 1) if decorators else (line, col)  # the decorator's "@"


def _span(starts: list[tuple[int, int]], node: ast.AST) -> tuple[int, int]:
    """The token indices [i, j) of `node` (decorators included)."""
    return bisect_left(starts, _start(node)), bisect_left(starts, (node.end_lineno, node.end_col_offset))


def _canonical_order(tree: ast.Module, raw: list[tokenize.TokenInfo], texts: list[str | None]) -> list[int]:
    """Token indices with the statements of the module and of every class body sorted by their normalised text."""
    starts = [t.start for t in raw]

    def units(body: list[ast.stmt]) -> list[int]:
        parts = []
        for node in body:
            i, j = _span(starts, node)
            if isinstance(node, ast.ClassDef) and node.body:
                head = bisect_left(starts, _start(node.body[0]))
                parts.append(list(range(i, head)) + units(node.body))
            else:
                parts.append(list(range(i, j)))
        parts.sort(key=lambda part: [t for i in part if (t := texts[i]) is not None])
        return [i for part in parts for i in part]

    return units(tree.body)


# -- fingerprints -------------------------------------------------------------------------------------

_BASE, _MOD = 1_000_003, (1 << 61) - 1


def kgram_hashes(tokens: list[str]) -> list[int]:
    """A hash of every run of K tokens (a rolling polynomial hash: the same on every machine and every run)."""
    ids = [zlib.crc32(t.encode()) for t in tokens]
    if len(ids) < K:
        return []
    h = 0
    for x in ids[:K]:
        h = (h * _BASE + x) % _MOD
    out, top = [h], pow(_BASE, K - 1, _MOD)
    for i in range(K, len(ids)):
        h = ((h - ids[i - K] * top) * _BASE + ids[i]) % _MOD
        out.append(h)
    return out


def winnow(hashes: list[int]) -> dict[int, list[int]]:
    """The fingerprints of a document: in each window of WINDOW hashes, the rightmost smallest (robust winnowing)."""
    chosen: dict[int, list[int]] = {}
    if not hashes:
        return chosen
    if len(hashes) <= WINDOW:
        pos = min(range(len(hashes)), key=lambda i: (hashes[i], -i))
        return {hashes[pos]: [pos]}
    last = -1
    for start in range(len(hashes) - WINDOW + 1):
        window = hashes[start:start + WINDOW]
        low = min(window)
        pos = start + WINDOW - 1 - window[::-1].index(low)
        if pos != last:
            chosen.setdefault(low, []).append(pos)
            last = pos
    return chosen


def fingerprints(code: Code) -> dict[int, list[int]]:
    return winnow(kgram_hashes(code.tokens))


# -- a class ------------------------------------------------------------------------------------------

def compare(assignment: str, codes: dict[str, Code], stub: Code | None = None, *, threshold: float = THRESHOLD,
            common: float = COMMON) -> Comparison:
    """Every pair of `codes` scored through an index of their fingerprints; `stub`'s k-grams are boilerplate."""
    import numpy as np

    boiler = set(kgram_hashes(stub.tokens)) if stub is not None else set()
    prints = {s: fingerprints(c) for s, c in codes.items()}
    students = sorted(codes)
    index: dict[int, list[int]] = {}
    dropped_boiler = set()
    for n, s in enumerate(students):
        for h in prints[s]:
            if h in boiler:
                dropped_boiler.add(h)
            else:
                index.setdefault(h, []).append(n)
    limit = max(COMMON_FLOOR, common * len(students))
    everyone = {h for h, owners in index.items() if len(owners) > limit}
    for s in students:
        prints[s] = {h: p for h, p in prints[s].items() if h not in boiler and h not in everyone}
    sizes = [len(prints[s]) for s in students]
    shared_columns = [owners for h, owners in index.items() if 1 < len(owners) <= limit]
    counts = np.zeros((len(students), len(students)), dtype=np.float64)
    for start in range(0, len(shared_columns), 4096):  # a dense (students x fingerprints) block at a time
        block = shared_columns[start:start + 4096]
        m = np.zeros((len(students), len(block)), dtype=np.float32)
        for col, owners in enumerate(block):
            m[owners, col] = 1.0
        counts += m @ m.T
    rows, cols = np.nonzero(np.triu(counts, k=1))
    pairs = []
    for i, j in zip(rows.tolist(), cols.tolist()):
        shared, a, b = int(counts[i, j]), int(sizes[i]), int(sizes[j])
        similarity = min(1.0, shared / max(min(a, b), MIN_FINGERPRINTS))
        pairs.append(Pair((students[i], students[j]), similarity, shared, (shared / max(a, 1), shared / max(b, 1)),
                          similarity >= threshold))
    pairs.sort(key=lambda p: (-p.similarity, -p.shared, p.students))
    notes = [f"{c.student}: {c.note}" for c in codes.values() if c.note]
    return Comparison(assignment, codes, prints, pairs, threshold, common, len(dropped_boiler), len(everyone), notes)


def compare_class(assignment: Assignment, submitted: Path, stub: str | None, *, threshold: float = THRESHOLD,
                  common: float = COMMON) -> Comparison:
    """Compare every `submitted/<student>/<assignment>/` of a class; `stub` is the source of the released stub,
    whose code is boilerplate."""
    from .batch import find_submissions

    subs, passed_over = find_submissions(submitted, assignment.name)
    codes = {}
    for sub in subs:
        source, note = submission_code(sub.path, assignment.file)
        code = normalize(sub.student, source)
        code.note = note or code.note
        codes[sub.student] = code
    result = compare(assignment.name, codes, normalize("(stub)", stub) if stub is not None else None,
                     threshold=threshold, common=common)
    result.notes = [f"{name}: {why}" for name, why in passed_over.items()] + result.notes
    if stub is None:
        result.notes.append("no stub of the assignment: the handout's code is not left out as boilerplate")
    return result


# -- the report -----------------------------------------------------------------------------------------

MAX_LISTED = 2000  # pairs in the HTML table
MAX_DETAILED = 100  # pairs shown side by side: the flagged ones, and at least the ten most similar


def render_html(result: Comparison, links: dict[str, str], *, minimum: float = 0.0) -> str:
    """The report as one self-contained page; `links` maps each student to the href of their code."""
    from .render import environment

    listed = [p for p in result.pairs if p.flagged or p.similarity >= minimum]
    detailed = listed[:min(MAX_DETAILED, max(10, sum(p.flagged for p in listed)))]
    rows = []
    for rank, pair in enumerate(listed[:MAX_LISTED], start=1):
        a, b = pair.students
        row = {"rank": rank, "percent": f"{pair.similarity:.0%}", "shared": pair.shared, "flagged": pair.flagged,
               "detail": rank <= len(detailed),
               "a": {"name": a, "href": links.get(a, ""), "share": f"{pair.shares[0]:.0%}"},
               "b": {"name": b, "href": links.get(b, ""), "share": f"{pair.shares[1]:.0%}"}}
        if row["detail"]:
            regions = result.regions(pair)
            row["regions"] = [{"n": n, "color": (n - 1) % 6, "a": line_ranges(ra), "b": line_ranges(rb)}
                              for n, (ra, rb) in enumerate(regions, start=1)]
            row["a"]["lines"] = _marked(result.codes[a].text, [ra for ra, _ in regions])
            row["b"]["lines"] = _marked(result.codes[b].text, [rb for _, rb in regions])
        rows.append(row)
    n = len(result.codes)
    return environment().get_template("similarity.html.j2").render(
        assignment=result.assignment, submissions=n, compared=n * (n - 1) // 2, threshold=f"{result.threshold:.0%}",
        flagged=sum(p.flagged for p in result.pairs), minimum=f"{minimum:.0%}", hidden=len(result.pairs) - len(listed),
        boilerplate=result.boilerplate, common=result.common, common_share=f"{result.common_share:.0%}",
        notes=result.notes, pairs=rows, details=[r for r in rows if r["detail"]])


def _marked(text: str, regions: list[set[int]]) -> list[dict]:
    """The lines of `text`, each with the number of the first matching region it is in (0: none)."""
    first: dict[int, int] = {}
    for n, lines in enumerate(regions, start=1):
        for line in lines:
            first.setdefault(line, n)
    return [{"n": number, "text": line, "match": first.get(number, 0), "color": (first.get(number, 1) - 1) % 6}
            for number, line in enumerate(text.splitlines(), start=1)]
