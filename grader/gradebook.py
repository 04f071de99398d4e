"""Grades in nbgrader's gradebook, so `nbgrader export` and formgrader see them.

Mapping (one kit assignment = one nbgrader assignment):

| kit | nbgrader |
|---|---|
| assignment `hw1` | `Assignment(name="hw1")` |
| the graded file | one `Notebook` named after the assignment (`hw1`) |
| component `MyLinear` | a `GradeCell(name="MyLinear", cell_type="code", max_score=its points)` |
| a student's report | `SubmittedAssignment` + `SubmittedNotebook`; per component a `Grade` with |
| | `auto_score` = points earned, `needs_manual_grade=False` |

So nbgrader's own sums give the total per assignment, and formgrader shows the score
per component. A manual score set in formgrader wins over `auto_score` (nbgrader's
rule), and kit never touches it.

Late work is stored where nbgrader keeps it: the assignment's `duedate`, the submission's
`extension`, and the `late_submission_penalty` of its notebook (points, never more than the
raw score), so `nbgrader export` subtracts the same penalty `kit export` does. Why it is
what it is (kit.grader.late.Lateness) goes into kit's `kit_late` table next to it, in the
same transaction. A Gradebook opened with the course's `Deadlines` applies them whenever it
records a submission; `apply_late` applies them again to submissions already graded (a
changed policy, a new extension, a new submission time) without running any student code.

Next to nbgrader's tables kit keeps one of its own, `kit_result`: per (assignment,
student) the content hash of the graded folder, the fingerprint of the checks, and
the full report as JSON (for `kit feedback`). It is written in the **same
transaction** as the grades, so the database never says "graded" for grades it does
not hold, nor holds grades without knowing what they were for. `kit grade` reruns use
it to skip what has not changed.

A second table, `kit_attempt`, keeps what `kit report` shows about grading itself: per
(assignment, student) the last attempt's wall time and machine, and, for a submission that
could not be graded, why. It is a table of its own (not new columns) so that gradebooks made
before it need no migration and older kits simply ignore it; a graded submission's row is
written in the same transaction as its grades.

Importing this module costs nothing. Opening a gradebook imports nbgrader.api (about half a second of
CPU), so `kit grade` opens it in a thread (`open_in_background`) while its workers grade, and
plans the run from `read_stored`, which reads a SQLite gradebook with the standard library.
"""
from __future__ import annotations

import importlib.util
import json
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .course import SetupError
from .late import NO_DUE, Deadlines, Lateness
from .report import Report

DEFAULT_DB = "gradebook.db"
KIT_TABLE = "kit_result"
ATTEMPT_TABLE = "kit_attempt"
LATE_TABLE = "kit_late"


def db_url(course_root: Path, db: str | None = None) -> str:
    """`--db` as an SQLAlchemy URL: a URL as given, a plain path as SQLite, nothing as `<course>/gradebook.db`."""
    if db and "://" in db:
        return db
    path = Path(db) if db else course_root / DEFAULT_DB
    return f"sqlite:///{path.resolve()}"


@dataclass
class Stored:
    """What kit knows about one graded submission."""

    student: str
    content_hash: str
    suite_hash: str
    score: float
    max_score: float
    report: dict
    graded_at: str


@dataclass
class Attempt:
    """The last time kit tried to grade one submission: how long it took, where, and why it failed if it did."""

    student: str
    seconds: float | None  # None: not known (e.g. a folder passed over before grading)
    node: str
    error: str | None  # None: graded
    at: str


# kit's record of each graded submission of one assignment whose grades nbgrader still holds (a row of
# nbgrader's submitted_assignment): the one query behind Gradebook.stored and read_stored
STORED_QUERY = (f"SELECT k.student, k.content_hash, k.suite_hash, k.score, k.max_score, k.report, k.graded_at "
                f"FROM {KIT_TABLE} k JOIN assignment a ON a.name = k.assignment "
                "JOIN submitted_assignment s ON s.assignment_id = a.id AND s.student_id = k.student "
                "WHERE k.assignment = :assignment")


def _stored(rows) -> dict[str, Stored]:
    return {row[0]: Stored(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6]) for row in rows}


def read_stored(url: str, assignment: str) -> dict[str, Stored] | None:
    """`Gradebook.stored` of a SQLite gradebook, read with the standard library (no nbgrader import), so
    that `kit grade` can plan its run and start grading at once; None when it cannot tell (another
    database, a file that is no gradebook yet)."""
    import os
    import sqlite3
    from urllib.parse import quote

    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///")
    if not os.path.exists(path):
        return {}
    try:
        con = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        return _stored(con.execute(STORED_QUERY, {"assignment": assignment}).fetchall())
    except sqlite3.Error:
        return None
    finally:
        con.close()


def _import_nbgrader():
    """nbgrader.api, with two parts of nbgrader's import left out that kit never uses (most of its
    import time):

    - nbgrader's package module imports its Jupyter server extensions (jupyter_server, tornado's web
      stack, the exchange); the package is entered without running it, as an empty package module over
      the same folder, so that `nbgrader.api` and what it imports load as usual. Where nbgrader is already
      imported, it is used as it is.
    - jsonschema's optional IRI format checkers (imported through nbformat): with rfc3987_syntax
      installed they compile a Lark grammar, and kit checks no IRI. Blocked for this import only: a
      None in sys.modules fails the import, and jsonschema then leaves those two checkers out.
    """
    if "nbgrader" not in sys.modules:
        spec = importlib.util.find_spec("nbgrader")
        if spec is not None and spec.submodule_search_locations:
            package = importlib.util.module_from_spec(spec)
            sys.modules["nbgrader"] = package
            package.__version__ = importlib.import_module("nbgrader._version").__version__
    blocked = "rfc3987_syntax" not in sys.modules
    if blocked:
        sys.modules["rfc3987_syntax"] = None
    try:
        import nbgrader.api
    finally:
        if blocked and sys.modules.get("rfc3987_syntax", 0) is None:
            del sys.modules["rfc3987_syntax"]
    return nbgrader.api


def _stamp_if_new(url: str) -> None:
    """Stamp a database without tables with the head revision of nbgrader's migrations, as nbgrader
    does, but in this process: nbgrader asks an `alembic heads` subprocess (about 2.5 s of CPU)."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    try:
        with engine.begin() as con:
            if inspect(con).get_table_names():
                return
            from alembic.script import ScriptDirectory  # 0.3 s: imported for a new gradebook only
            from nbgrader.dbutil import ALEMBIC_DIR

            con.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            con.execute(text("INSERT INTO alembic_version (version_num) VALUES (:head)"),
                        {"head": ScriptDirectory(ALEMBIC_DIR).get_current_head()})
    finally:
        engine.dispose()


@dataclass(frozen=True)
class LateRecord:
    """A submission's late penalty as the gradebook holds it, and why."""

    student: str
    raw_score: float  # nbgrader's score before the penalty (manual grades included)
    max_score: float
    penalty: float  # nbgrader's late_submission_penalty
    lateness: Lateness

    @property
    def score(self) -> float:
        """The final score, as `nbgrader export` computes it."""
        return max(0.0, self.raw_score - self.penalty)


def _kit_tables():
    from sqlalchemy import Column, Float, MetaData, String, Table, Text

    meta = MetaData()
    attempts = Table(ATTEMPT_TABLE, meta,
                     Column("assignment", String(128), primary_key=True),
                     Column("student", String(128), primary_key=True),
                     Column("seconds", Float, nullable=True),
                     Column("node", String(256), nullable=False),
                     Column("error", Text, nullable=True),
                     Column("at", String(40), nullable=False))
    table = Table(KIT_TABLE, meta,
                  Column("assignment", String(128), primary_key=True),
                  Column("student", String(128), primary_key=True),
                  Column("content_hash", String(64), nullable=False),
                  Column("suite_hash", String(64), nullable=False),
                  Column("score", Float, nullable=False),
                  Column("max_score", Float, nullable=False),
                  Column("report", Text, nullable=False),
                  Column("graded_at", String(40), nullable=False))
    late = Table(LATE_TABLE, meta,
                 Column("assignment", String(128), primary_key=True),
                 Column("student", String(128), primary_key=True),
                 Column("penalty", Float, nullable=False),
                 Column("lateness", Text, nullable=False),
                 Column("applied_at", String(40), nullable=False))
    return meta, table, attempts, late


class Gradebook:
    """nbgrader's gradebook plus kit's `kit_result`, `kit_attempt` and `kit_late` tables, one transaction per
    submission."""

    def __init__(self, url: str, deadlines: Deadlines | None = None) -> None:
        """`deadlines`: the course's due dates, late policy and extensions, applied to every submission recorded
        (without them the late penalties already stored are left as they are)."""
        api = _import_nbgrader()
        _stamp_if_new(url)
        self.url = url
        self.deadlines = deadlines
        self.nb = api.Gradebook(url)
        self.db = self.nb.db
        meta, self.table, self.attempt_table, self.late_table = _kit_tables()
        meta.create_all(bind=self.nb.engine)
        self.max_changes: list[str] = []  # components whose max score this run changed

    def close(self) -> None:
        self.nb.close()

    def __enter__(self) -> Gradebook:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------------

    def stored(self, assignment: str) -> dict[str, Stored]:
        """kit's record of every graded submission of `assignment` whose grades nbgrader still holds."""
        from sqlalchemy import text

        return _stored(self.db.execute(text(STORED_QUERY), {"assignment": assignment}).all())

    def scores(self, assignment: str) -> dict[str, tuple[float, float, datetime | None]]:
        """nbgrader's (score, max score, submission time) per student for `assignment`: manual grades included."""
        from nbgrader.api import Assignment, SubmittedAssignment

        out = {}
        for sub in (self.db.query(SubmittedAssignment).join(Assignment)
                    .filter(Assignment.name == assignment)):
            out[sub.student_id] = (float(sub.score), float(sub.max_score), sub.timestamp)
        return out

    def attempts(self, assignment: str) -> dict[str, Attempt]:
        """The last grading attempt per student (or passed-over folder) of `assignment`, where kit noted one."""
        from sqlalchemy import select

        rows = self.db.execute(select(self.attempt_table).where(self.attempt_table.c.assignment == assignment)).all()
        return {r.student: Attempt(r.student, r.seconds, r.node, r.error, r.at) for r in rows}

    # -- writing ---------------------------------------------------------------------------------

    def record(self, assignment: str, student: str, report: Report, *, content_hash: str, suite_hash: str,
               timestamp: datetime | None = None, seconds: float | None = None, node: str = "") -> None:
        """Write one submission's grades and kit's record of them (and of how long grading took), in one
        transaction."""
        from nbgrader.api import Assignment, Grade, GradeCell, Notebook, Student, SubmittedAssignment, SubmittedNotebook
        from sqlalchemy import delete, insert

        db = self.db
        try:
            a = db.query(Assignment).filter(Assignment.name == assignment).one_or_none()
            if a is None:
                a = Assignment(name=assignment, course_id=self.nb.course_id)
                db.add(a)
            nb = db.query(Notebook).filter(Notebook.assignment == a, Notebook.name == assignment).one_or_none()
            if nb is None:
                nb = Notebook(name=assignment, assignment=a)
                db.add(nb)
            cells = {c.name: c for c in db.query(GradeCell).filter(GradeCell.notebook == nb)}
            earned = report.components()
            for component, (_, top) in earned.items():
                cell = cells.get(component)
                if cell is None:
                    cell = cells[component] = GradeCell(name=component, notebook=nb, max_score=top, cell_type="code")
                    db.add(cell)
                elif abs(cell.max_score - top) > 1e-9:
                    self.max_changes.append(f"{assignment}/{component}: max score {cell.max_score:g} -> {top:g}")
                    cell.max_score = top
            s = db.get(Student, student)
            if s is None:
                s = Student(id=student)
                db.add(s)
            sub = (db.query(SubmittedAssignment)
                   .filter(SubmittedAssignment.assignment == a, SubmittedAssignment.student == s).one_or_none())
            if sub is None:
                sub = SubmittedAssignment(assignment=a, student=s)
                db.add(sub)
            sub.timestamp = timestamp
            snb = next((n for n in sub.notebooks if n.notebook is nb), None)
            if snb is None:
                snb = SubmittedNotebook(notebook=nb, assignment=sub)
                db.add(snb)
            grades = {g.cell.name: g for g in snb.grades if g.cell is not None}
            for name, cell in cells.items():
                grade = grades.get(name)
                if grade is None:
                    grade = Grade(cell=cell, notebook=snb)
                    db.add(grade)
                grade.auto_score = round(earned.get(name, (0.0, 0.0))[0], 6)
                grade.needs_manual_grade = False
            db.execute(delete(self.table).where(self.table.c.assignment == assignment,
                                                self.table.c.student == student))
            db.execute(insert(self.table).values(
                assignment=assignment, student=student, content_hash=content_hash, suite_hash=suite_hash,
                score=report.score, max_score=report.max_score, report=json.dumps(report.to_json()),
                graded_at=_now()))
            self._attempt(assignment, student, seconds, node, None)
            if self.deadlines is not None:
                self._apply_late(a, sub)
            db.commit()
        except BaseException:
            db.rollback()
            raise

    def record_not_graded(self, assignment: str, why: dict[str, str], *, seconds: dict[str, float] | None = None,
                          replace: bool | set[str] = False) -> None:
        """Note the submissions of `assignment` that could not be graded, and why (one transaction).

        `replace=True` first forgets every earlier not-graded note of the assignment (a run that looked
        at every submission knows which still fail); a set of students forgets theirs only.
        """
        from sqlalchemy import delete

        table = self.attempt_table
        try:
            if replace:
                stale = delete(table).where(table.c.assignment == assignment, table.c.error.is_not(None))
                if replace is not True:
                    stale = stale.where(table.c.student.in_(sorted(replace)))
                self.db.execute(stale)
            for name, error in why.items():  # a passed-over folder's name may be anything: keep it within the column
                self._attempt(assignment, name[:128], (seconds or {}).get(name), "", error or "unknown error")
            self.db.commit()
        except BaseException:
            self.db.rollback()
            raise

    def _attempt(self, assignment: str, student: str, seconds: float | None, node: str, error: str | None) -> None:
        from sqlalchemy import delete, insert

        table = self.attempt_table
        self.db.execute(delete(table).where(table.c.assignment == assignment, table.c.student == student))
        self.db.execute(insert(table).values(assignment=assignment, student=student, node=node, error=error,
                                             seconds=None if seconds is None else round(seconds, 3), at=_now()))

    # -- late work -------------------------------------------------------------------------------

    def apply_late(self, assignment: str, *, timestamps: dict[str, datetime | None] | None = None,
                   students: list[str] | None = None) -> dict[str, LateRecord]:
        """Apply the deadlines again to the graded submissions of `assignment` (all, or `students`), in one
        transaction: no student code runs. `timestamps` replaces the recorded submission times first (a
        submission collected again, with the same files, at another time)."""
        from nbgrader.api import Assignment, SubmittedAssignment

        if self.deadlines is None:
            raise ValueError("open the gradebook with the course's deadlines to apply them")
        db = self.db
        chosen = set(students) if students is not None else None
        out = {}
        try:
            a = db.query(Assignment).filter(Assignment.name == assignment).one_or_none()
            if a is None:
                return {}
            for sub in db.query(SubmittedAssignment).filter(SubmittedAssignment.assignment == a):
                if chosen is not None and sub.student_id not in chosen:
                    continue
                if timestamps is not None and sub.student_id in timestamps:
                    sub.timestamp = timestamps[sub.student_id]
                out[sub.student_id] = self._apply_late(a, sub)
            db.commit()
        except BaseException:
            db.rollback()
            raise
        return dict(sorted(out.items()))

    def _apply_late(self, a, sub) -> LateRecord:
        """Within the caller's transaction: the due date, the extension and the penalty, in nbgrader's columns
        and kit's record of why."""
        from sqlalchemy import delete, insert

        deadlines = self.deadlines
        due = deadlines.due.get(a.name)
        a.duedate = _naive_utc(due)
        lateness = deadlines.assess(a.name, sub.student_id, sub.timestamp)
        sub.extension = lateness.due - due if lateness.extended and due is not None else None
        self.db.flush()
        self.db.expire(sub, ["score", "max_score"])  # nbgrader's sums, with the grades just written
        raw, top = float(sub.score), float(sub.max_score)
        penalty = lateness.penalty(raw, top)
        for i, snb in enumerate(sub.notebooks):  # nbgrader sums its notebooks' penalties; kit has one notebook
            snb.late_submission_penalty = penalty if i == 0 else 0.0
        self.db.execute(delete(self.late_table).where(self.late_table.c.assignment == a.name,
                                                      self.late_table.c.student == sub.student_id))
        self.db.execute(insert(self.late_table).values(
            assignment=a.name, student=sub.student_id, penalty=penalty, lateness=json.dumps(lateness.to_json()),
            applied_at=_now()))
        return LateRecord(sub.student_id, raw, top, penalty, lateness)

    def late(self, assignment: str) -> dict[str, LateRecord]:
        """The late penalty of every graded submission of `assignment` and why (Lateness NO_DUE when kit never
        applied deadlines to it)."""
        from nbgrader.api import Assignment, SubmittedAssignment
        from sqlalchemy import select

        why = {row.student: Lateness.from_json(json.loads(row.lateness)) for row in self.db.execute(
            select(self.late_table).where(self.late_table.c.assignment == assignment))}
        out = {}
        for sub in (self.db.query(SubmittedAssignment).join(Assignment).filter(Assignment.name == assignment)
                    .order_by(SubmittedAssignment.student_id)):
            out[sub.student_id] = LateRecord(sub.student_id, float(sub.score), float(sub.max_score),
                                             float(sub.late_submission_penalty or 0.0),
                                             why.get(sub.student_id, Lateness(NO_DUE)))
        return out

    # -- export ----------------------------------------------------------------------------------

    def export_rows(self, assignments: list[str] | None = None, students: list[str] | None = None) -> list[dict]:
        """One row per student and assignment, like `nbgrader export` (no submission: score 0)."""
        from nbgrader.api import MissingEntry

        rows = []
        for a in self.nb.assignments:
            if assignments and a.name not in assignments:
                continue
            cells = [c.name for nb in a.notebooks for c in nb.grade_cells]
            why = self.late(a.name)
            for s in self.nb.students:
                if students and s.id not in students:
                    continue
                row = {"assignment": a.name, "student_id": s.id, "last_name": s.last_name or "",
                       "first_name": s.first_name or "", "email": s.email or "",
                       "duedate": str(a.duedate or ""), "timestamp": "",
                       "raw_score": 0.0, "late_submission_penalty": 0.0, "score": 0.0,
                       "max_score": float(a.max_score), "late": "", "components": {c: 0.0 for c in cells}}
                try:
                    sub = self.nb.find_submission(a.name, s.id)
                except MissingEntry:
                    rows.append(row)
                    continue
                penalty = sub.late_submission_penalty or 0.0
                row.update(timestamp=str(sub.timestamp or ""), raw_score=float(sub.score),
                           late_submission_penalty=float(penalty), score=max(0.0, float(sub.score) - penalty))
                if s.id in why:
                    row["late"] = why[s.id].lateness.describe()
                for nb in sub.notebooks:
                    for g in nb.grades:
                        row["components"][g.cell.name] = float(g.score)
                rows.append(row)
        return rows


class BackgroundGradebook:
    """A `Gradebook` opened in a thread, for `kit grade`: its workers start grading at once, planned from
    `read_stored`, while nbgrader is imported; the first result to write waits for the gradebook."""

    def __init__(self, url: str, deadlines: Deadlines | None = None) -> None:
        self.url, self.deadlines = url, deadlines
        self._book: Gradebook | None = None
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._open, name="kit-open-gradebook", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        try:
            book = Gradebook(self.url, self.deadlines)
            book.db.remove()  # nbgrader's session is per thread: the threads that use the book make their own
            self._book = book
        except Exception as exc:  # noqa: BLE001 - a bad URL, a locked or foreign database: said by opened()
            self._error = exc

    def opened(self) -> Gradebook:
        """The gradebook, once open (SetupError if it cannot be)."""
        self._thread.join()
        if self._book is None:
            raise SetupError(f"cannot open the gradebook {self.url}: {self._error}")
        return self._book

    def stored(self, assignment: str) -> dict[str, Stored]:
        found = read_stored(self.url, assignment)
        return self.opened().stored(assignment) if found is None else found

    def record(self, *args, **kwargs) -> None:
        self.opened().record(*args, **kwargs)

    def close(self) -> None:
        self._thread.join()
        if self._book is not None:
            self._book.close()

    def __enter__(self) -> BackgroundGradebook:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _naive_utc(moment: datetime | None) -> datetime | None:
    """A zoned time as nbgrader stores times: naive, in UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment is not None else None
