"""`kit grade hwN`: grade every submission of a class into nbgrader's gradebook."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kit.grader.course import Course, SetupError, find_course

from .options import KitError, db_option, gradebook_url, json_option, students_option, with_course


@click.command()
@click.argument("assignment")
@click.argument("submitted", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Submissions graded in parallel (default: cores).")
@db_option
@json_option
@click.option("--force", is_flag=True, help="Regrade submissions that are already graded and unchanged.")
@students_option
@click.option("--unsafe-no-sandbox", is_flag=True,
              help="Grade without bubblewrap (resource limits only). Only for code you trust.")
@with_course
@click.option("--no-fork-server", is_flag=True,
              help="Start each submission's child from scratch (slower) instead of forking a warm one.")
@click.option("-v", "--verbose", is_flag=True, help="Also list every student's score.")
@click.option("--ray", "ray_address", metavar="ADDRESS",
              help="Grade on the Ray cluster at ADDRESS (auto, HOST:PORT or ray://HOST:PORT) instead of this machine; "
                   "needs `pip install 'kit[ray]'`, and bubblewrap on every node.")
@click.pass_context
def grade(ctx: click.Context, assignment: str, submitted: Path | None, jobs: int | None, db: str | None,
          as_json: bool, force: bool, students: tuple[str, ...], unsafe_no_sandbox: bool, course: Course,
          no_fork_server: bool, verbose: bool, ray_address: str | None) -> None:
    """Grade every submission of ASSIGNMENT (public and hidden checks) into the gradebook.

    SUBMITTED holds nbgrader's layout, SUBMITTED/<student>/ASSIGNMENT/ (default:
    COURSE/submitted, where `kit collect` puts them). Each submission runs in its own
    sandboxed child process. A rerun skips submissions already graded whose files and
    checks have not changed, so an interrupted run just continues. With --ray the
    submissions are graded on a Ray cluster's nodes (see docs/scale.md), and this machine
    still writes the gradebook.
    """
    from kit.grader.batch import find_submissions, grade_class
    from kit.grader.gradebook import BackgroundGradebook
    from kit.grader.late import Deadlines, class_notes

    spec = course.assignment(assignment)
    deadlines = Deadlines.load(course, [spec])  # a bad extensions.toml stops here, before any work
    folder = (submitted or course.root / "submitted").resolve()
    if not folder.is_dir():
        raise KitError(f"no folder {folder} (collect submissions first: kit collect {assignment} SOURCE)")
    subs, passed_over = find_submissions(folder, spec.name)
    if students:
        unknown = sorted(set(students) - {s.student for s in subs})
        if unknown:
            raise KitError(f"no submission of {assignment} for: {', '.join(unknown)}")
        subs = [s for s in subs if s.student in students]
    if not subs:
        raise KitError(f"no submissions of {assignment} in {folder} (expected {folder}/<student>/{assignment}/)")
    # refuses to go on without a sandbox (a SetupError) unless told to
    grader, sandbox_note, warning = make_grader(ray_address, jobs, not unsafe_no_sandbox, not no_fork_server)
    url = gradebook_url(course, db)
    err = Console(stderr=True, highlight=False)
    try:
        # nbgrader's import takes a second: the gradebook opens in a thread while the workers grade
        with BackgroundGradebook(url, deadlines) as book:
            if warning:
                err.print(Text(f"warning: {warning}", style="yellow"))
            with progress_bar(spec.name, err) as advance:
                run = grade_class(spec, subs, book, grader, force=force, on_result=advance)
            # for `kit report`: what could not be graded, and why (a complete run forgets what now grades)
            opened = book.opened()
            opened.record_not_graded(spec.name, {**passed_over, **run.errors}, seconds=run.seconds,
                                     replace=False if run.interrupted else (set(students) or True))
            # the deadlines again for every graded submission, unchanged ones too: no code runs, and a new
            # policy, extension or submission time counts at once
            late = opened.apply_late(spec.name, timestamps={s.student: s.timestamp for s in subs},
                                     students=list(run.reports))
            notes = [f"{name}: {why}" for name, why in passed_over.items()] + opened.max_changes + class_notes(
                deadlines, spec.name, {s: r.lateness for s, r in late.items()})
    finally:
        grader.close()
    if run.regraded_for_checks:
        notes.append(f"{run.regraded_for_checks} unchanged submissions regraded because the checks changed")
    if run.interrupted:
        err.print(Text(f"interrupted: {len(run.reports) - len(run.cached)} submissions graded and saved, "
                       f"{len(subs) - len(run.reports) - len(run.errors)} left. Run the same command again to "
                       "continue.", style="bold yellow"))
        ctx.exit(130)
    from kit.grader.stats import summarize

    summary = summarize(run.reports)
    if as_json:
        doc = {
            "assignment": spec.name,
            "submissions": [{"student": s, "cached": s in run.cached, "node": run.nodes.get(s, ""),
                             **run.reports[s].to_json(), "late": late_json(late.get(s))} for s in sorted(run.reports)],
            "not_graded": [{"student": s, "error": e} for s, e in sorted(run.errors.items())],
            "summary": summary,
            "gradebook": url,
            "sandbox": sandbox_note,
            "notes": notes,
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        print_summary(spec, summary, run, notes, url, sandbox_note, verbose, report_command(course, spec.name, db))
    if run.errors:
        ctx.exit(2)
    ctx.exit(0 if all(r.all_passed for r in run.reports.values()) else 1)


def make_grader(ray_address: str | None, jobs: int | None, require_sandbox: bool, fork_server: bool):
    """The grader (this machine's worker pool, or a Ray cluster), what runs student code in words, and the
    warning to show when that is not a sandbox; a SetupError when the sandbox is missing and required."""
    if ray_address is not None:
        from kit.grader.ray_grader import RayGrader

        grader = RayGrader(ray_address, require_sandbox, jobs=jobs, fork_server=fork_server)
        grader.connect()  # every node probed: a SetupError when one cannot grade as this machine would
        return grader, grader.sandbox, grader.warning
    from kit.grader.launch import Limits
    from kit.grader.pool import WorkerPool, default_jobs
    from kit.grader.sandbox import make_launcher, probe

    found = probe()  # once, here: the workers are handed it
    launcher = make_launcher(Limits(), require=require_sandbox, found=found)
    pool = WorkerPool(jobs or default_jobs(), require_sandbox=require_sandbox, fork_server=fork_server, probe=found)
    return pool, launcher.description if launcher.sandboxed else launcher.warning, launcher.warning


def late_json(record) -> dict | None:
    """A submission's late penalty in `--json` (None: not in the gradebook)."""
    if record is None:
        return None
    return {"kind": record.lateness.kind, "flagged": record.lateness.flagged, "reason": record.lateness.describe(),
            "penalty": record.penalty, "score_after_penalty": record.score}


class progress_bar:
    """A progress bar on stderr that `advance(outcome)` moves on by one submission."""

    def __init__(self, assignment: str, console: Console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.assignment = assignment
        self.progress = Progress(TextColumn("[bold]grading {task.fields[assignment]}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("{task.fields[last]}", markup=False), console=console)
        self.task = None

    def __enter__(self):
        self.progress.start()
        self.task = self.progress.add_task("grade", total=None, assignment=self.assignment, last="")
        return self.advance

    def advance(self, outcome) -> None:
        who = outcome.job.student
        last = f"{who}: not graded" if outcome.report is None else \
            f"{who}: {outcome.report.score:g}/{outcome.report.max_score:g}"
        self.progress.update(self.task, advance=1, last=last)

    def __exit__(self, *exc) -> None:
        self.progress.stop()


def report_command(course: Course, assignment: str, db: str | None) -> str:
    """The `kit report` command that makes the class page of what was just graded, runnable from here."""
    args = ["kit", "report", assignment, "--html", f"{assignment}-report.html"]
    try:
        found = find_course().root
    except SetupError:
        found = None
    if found != course.root:  # kit would not find this course from here by itself
        args += ["--course", str(course.root)]
    if db:
        args += ["--db", db]
    return shlex.join(args)


def print_summary(spec, summary: dict, run, notes: list[str], url: str, sandbox_note: str, verbose: bool,
                  report: str) -> None:
    console = Console(highlight=False)
    n = summary["submissions"]
    console.print(Text(f"\n{spec.name}: {spec.title}", style="bold"))
    console.print(Text(f"{n} submissions graded ({n - len(run.cached)} now, {len(run.cached)} unchanged since the "
                       "last run)" + (f", {len(run.errors)} could not be graded" if run.errors else "")))
    console.print(Text(f"gradebook: {url}\nsandbox: {sandbox_note}"))
    if n:
        console.print(f"total: mean {summary['mean']:.2f} / {summary['max_score']:g}, median {summary['median']:g}, "
                      f"min {summary['min']:g}, max {summary['max']:g}; full marks: {summary['full_marks']}")
        console.print(_table("per component", ["component", "mean", "max", "full marks", "zero"],
                             [[c["component"], f"{c['mean']:.2f}", f"{c['max_score']:g}", str(c["full_marks"]),
                               str(c["zero"])] for c in summary["components"]]))
        most = max(b["count"] for b in summary["distribution"]) or 1
        dist = _table("distribution of totals", ["score", "students", ""],
                      [[b["range"], str(b["count"]), "█" * round(30 * b["count"] / most)]
                       for b in summary["distribution"]])
        console.print(dist)
        if summary["failures"]:
            console.print(_table("failures by check", ["check", "component", "points", "failed", "error"],
                                 [[f["check"] + (" (hidden)" if f["hidden"] else ""), f["component"],
                                   f"{f['max_points']:g}", str(f["failed"]), str(f["error"])]
                                  for f in summary["failures"]]))
    if verbose and run.reports:
        rows = []
        for student in sorted(run.reports):
            r = run.reports[student]
            problem = r.problems[0].message.splitlines()[0] if r.problems else ""
            rows.append([student, f"{r.score:g}/{r.max_score:g}",
                         ("(unchanged) " if student in run.cached else "") + problem])
        console.print(_table("students", ["student", "score", ""], rows))
    for student, error in sorted(run.errors.items()):
        console.print(Text(f"not graded: {student}: {error.splitlines()[0] if error else ''}", style="red"))
    for note in notes:
        console.print(Text(f"note: {note}", style="yellow"))
    console.print(Text(f"class report: {report}", style="bold"))


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    """A plain table; every cell is Text, so nothing a student wrote is read as markup."""
    table = Table(title=title, title_justify="left", show_edge=False)
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 or name in ("component", "") else "right")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table
