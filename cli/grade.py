"""`kit grade hwN`: grade every submission of a class into nbgrader's gradebook."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from kit.grader.course import SetupError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .check import resolve_course


def fail_setup(message: str) -> None:
    """A usage or setup error: say what to fix, exit 2."""
    Console(stderr=True, highlight=False).print(Text(f"error: {message}", style="bold red"))
    sys.exit(2)


@click.command()
@click.argument("assignment")
@click.argument("submitted", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Submissions graded in parallel (default: cores).")
@click.option("--db", help="Gradebook: an SQLAlchemy URL or a SQLite file (default: COURSE/gradebook.db).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of the summary.")
@click.option("--force", is_flag=True, help="Regrade submissions that are already graded and unchanged.")
@click.option("--student", "students", multiple=True, metavar="ID", help="Only this student (repeatable).")
@click.option("--unsafe-no-sandbox", is_flag=True,
              help="Grade without bubblewrap (resource limits only). Only for code you trust.")
@click.option("--course", "course_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Course folder holding kit.toml (default: the current folder or above).")
@click.option("--no-fork-server", is_flag=True,
              help="Start each submission's child from scratch (slower) instead of forking a warm one.")
@click.option("-v", "--verbose", is_flag=True, help="Also list every student's score.")
def grade(assignment: str, submitted: Path | None, jobs: int | None, db: str | None, as_json: bool, force: bool,
          students: tuple[str, ...], unsafe_no_sandbox: bool, course_dir: Path | None, no_fork_server: bool,
          verbose: bool) -> None:
    """Grade every submission of ASSIGNMENT (public and hidden checks) into the gradebook.

    SUBMITTED holds nbgrader's layout, SUBMITTED/<student>/ASSIGNMENT/ (default:
    COURSE/submitted, where `kit collect` puts them). Each submission runs in its own
    sandboxed child process. A rerun skips submissions already graded whose files and
    checks have not changed, so an interrupted run just continues.
    """
    try:
        run_grade(assignment, submitted, jobs, db, as_json, force, students, unsafe_no_sandbox, course_dir,
                  not no_fork_server, verbose)
    except KeyboardInterrupt:  # before or after the grading loop (the loop handles its own)
        Console(stderr=True).print(Text("interrupted: whatever was graded is saved; run the same command again "
                                        "to continue.", style="bold yellow"))
        sys.exit(130)


def run_grade(assignment: str, submitted: Path | None, jobs: int | None, db: str | None, as_json: bool, force: bool,
              students: tuple[str, ...], unsafe_no_sandbox: bool, course_dir: Path | None, fork_server: bool,
              verbose: bool) -> None:
    from kit.grader.grading import check_sandbox, default_jobs, find_submissions, suite_hash
    from kit.grader.runner import Limits

    err = Console(stderr=True, highlight=False)
    try:
        course = resolve_course(course_dir)
        spec = course.assignment(assignment)
    except SetupError as exc:
        fail_setup(str(exc))
    folder = (submitted or course.root / "submitted").resolve()
    if not folder.is_dir():
        fail_setup(f"no folder {folder} (collect submissions first: kit collect {assignment} SOURCE)")
    subs, passed_over = find_submissions(folder, spec.name)
    if students:
        unknown = sorted(set(students) - {s.student for s in subs})
        if unknown:
            fail_setup(f"no submission of {assignment} for: {', '.join(unknown)}")
        subs = [s for s in subs if s.student in students]
    if not subs:
        fail_setup(f"no submissions of {assignment} in {folder} (expected {folder}/<student>/{assignment}/)")
    limits = Limits(check_timeout=spec.check_timeout, time_budget=spec.time_budget)
    try:
        sandboxed, sandbox_note = check_sandbox(limits, require=not unsafe_no_sandbox)
    except Exception as exc:  # noqa: BLE001 - SandboxUnavailable, or no sandbox module at all
        fail_setup(str(exc))

    from kit.grader.gradebook import Gradebook, db_url, peek_graded
    from kit.grader.grading import WorkerPool
    from kit.grader.report import Report

    url = db_url(course.root, db)
    checks_hash = suite_hash(spec)
    # Start the workers (each imports torch) while this process imports nbgrader (~2 s).
    peek = peek_graded(url, spec.name)
    likely = len(subs) if peek is None or force else sum(
        1 for s in subs if peek.get(s.student) != (s.content_hash, checks_hash))
    pool = WorkerPool(min(jobs or default_jobs(), max(1, likely)), require_sandbox=not unsafe_no_sandbox,
                      fork_server=fork_server)
    try:
        if likely:
            pool.start()
        try:
            book = Gradebook(url)
        except Exception as exc:  # noqa: BLE001 - a bad URL, a locked or foreign database
            fail_setup(f"cannot open the gradebook {url}: {exc}")
        with book:
            stored = book.stored(spec.name)
            todo, reports, cached, regraded_for_checks = [], {}, set(), 0
            for sub in subs:
                old = stored.get(sub.student)
                if old and not force and old.content_hash == sub.content_hash and old.suite_hash == checks_hash:
                    reports[sub.student] = old.report
                    cached.add(sub.student)
                else:
                    if old and old.content_hash == sub.content_hash and old.suite_hash != checks_hash:
                        regraded_for_checks += 1
                    todo.append(sub)
            errors: dict[str, str] = {}
            interrupted = False
            if not sandboxed:
                err.print(Text(f"warning: {sandbox_note}", style="yellow"))
            if todo:
                interrupted = _grade(spec, todo, book, reports, errors, pool, checks_hash, console=err)
            notes = list(passed_over) + book.max_changes
            if regraded_for_checks:
                notes.append(f"{regraded_for_checks} unchanged submissions regraded because the checks changed")
    finally:
        pool.close()
    if interrupted:
        err.print(Text(f"interrupted: {len(reports) - len(cached)} submissions graded and saved, "
                       f"{len(subs) - len(reports) - len(errors)} left. Run the same command again to continue.",
                       style="bold yellow"))
        sys.exit(130)

    from kit.grader.grading import summarize

    summary = summarize(reports)
    if as_json:
        doc = {
            "assignment": spec.name,
            "submissions": [dict(student=s, cached=s in cached, **_plain(reports[s])) for s in sorted(reports)],
            "not_graded": [{"student": s, "error": e} for s, e in sorted(errors.items())],
            "summary": summary,
            "gradebook": url,
            "sandbox": sandbox_note,
            "notes": notes,
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        print_summary(spec, summary, reports, cached, errors, notes, url, sandbox_note, verbose)
    if errors:
        sys.exit(2)
    sys.exit(0 if all(Report.from_json(r).all_passed for r in reports.values()) else 1)


def _plain(report: dict) -> dict:
    return {k: report[k] for k in ("score", "max_score", "checks", "notes") if k in report}


def _grade(spec, todo, book, reports, errors, pool, checks_hash: str, *, console: Console) -> bool:
    """Grade `todo`, writing each result as it arrives; True if interrupted (Ctrl-C)."""
    from kit.grader.report import Report
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("[bold]grading {task.fields[assignment]}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[last]}", markup=False)]
    outcomes = pool.grade(spec, todo)
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("grade", total=len(todo), assignment=spec.name, last="")
            for outcome in outcomes:
                sub = outcome.submission
                if outcome.report is None:
                    errors[sub.student] = outcome.error or "unknown error"
                    last = f"{sub.student}: not graded"
                else:
                    report = Report.from_json(outcome.report)
                    book.record(spec.name, sub.student, report, content_hash=sub.content_hash,
                                suite_hash=checks_hash, timestamp=sub.timestamp)
                    reports[sub.student] = outcome.report
                    last = f"{sub.student}: {report.score:g}/{report.max_score:g}"
                progress.update(task, advance=1, last=last)
    except KeyboardInterrupt:
        return True
    finally:
        outcomes.close()  # stops the workers and their children
    return False


def print_summary(spec, summary: dict, reports: dict, cached: set, errors: dict, notes: list[str], url: str,
                  sandbox_note: str, verbose: bool) -> None:
    from kit.grader.report import Report

    console = Console(highlight=False)
    n = summary["submissions"]
    fresh = n - len(cached)
    console.print(Text(f"\n{spec.name}: {spec.title}", style="bold"))
    console.print(Text(f"{n} submissions graded ({fresh} now, {len(cached)} unchanged since the last run)"
                       + (f", {len(errors)} could not be graded" if errors else "")))
    console.print(Text(f"gradebook: {url}\nsandbox: {sandbox_note}"))
    if n:
        top = summary["max_score"]
        console.print(f"total: mean {summary['mean']:.2f} / {top:g}, median {summary['median']:g}, "
                      f"min {summary['min']:g}, max {summary['max']:g}; full marks: {summary['full_marks']}")
        comps = Table(title="per component", title_justify="left", show_edge=False)
        for col, just in (("component", "left"), ("mean", "right"), ("max", "right"), ("full marks", "right"),
                          ("zero", "right")):
            comps.add_column(col, justify=just)
        for c in summary["components"]:
            comps.add_row(Text(c["component"]), f"{c['mean']:.2f}", f"{c['max_score']:g}", str(c["full_marks"]), str(c["zero"]))
        console.print(comps)
        dist = Table(title="distribution of totals", title_justify="left", show_edge=False)
        dist.add_column("score")
        dist.add_column("students", justify="right")
        dist.add_column("")
        most = max(b["count"] for b in summary["distribution"]) or 1
        for b in summary["distribution"]:
            dist.add_row(b["range"], str(b["count"]), Text("█" * round(30 * b["count"] / most), style="cyan"))
        console.print(dist)
        if summary["failures"]:
            fails = Table(title="failures by check", title_justify="left", show_edge=False)
            for col, just in (("check", "left"), ("component", "left"), ("points", "right"), ("failed", "right"),
                              ("error", "right")):
                fails.add_column(col, justify=just)
            for f in summary["failures"]:
                fails.add_row(Text(f["check"] + (" (hidden)" if f["hidden"] else "")), Text(f["component"]),
                              f"{f['max_points']:g}",
                              str(f["failed"]), str(f["error"]))
            console.print(fails)
    if verbose and reports:
        table = Table(title="students", title_justify="left", show_edge=False)
        for col, just in (("student", "left"), ("score", "right"), ("", "left")):
            table.add_column(col, justify=just)
        for student in sorted(reports):
            r = Report.from_json(reports[student])
            broken = next((c.message.splitlines()[0] for c in r.checks if c.message and "could not import" in c.message), "")
            table.add_row(Text(student), f"{r.score:g}/{r.max_score:g}",
                          Text(("(unchanged) " if student in cached else "") + broken))
        console.print(table)
    for student, error in sorted(errors.items()):
        console.print(Text(f"not graded: {student}: {error.splitlines()[0] if error else ''}", style="red"))
    for note in notes:
        console.print(Text(f"note: {note}", style="yellow"))
