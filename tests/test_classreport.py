"""`kit report`: the class page, from a real graded class, checked in the page's text and in a real browser.

The `graded_class` fixture builds a small class of hw1 submissions (right, wrong in several ways,
broken, forbidden, crashing, empty, two that make the same mistake with different numbers, and two
folders `kit grade` must pass over), grades it once with `kit grade` into a real SQLite gradebook,
writes every student's feedback with `kit feedback`, then runs the very `kit report` command that
`kit grade` printed. It takes about 40 s on two cores (the grading); its tests are marked `slow`.

The browser tests drive Debian's chromium (tests/browser.py) and keep a screenshot of each page in
$KIT_ARTIFACTS (default ./artifacts). Without chromium they are skipped, unless KIT_REQUIRE_BROWSER=1
(CI), where they fail.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import shutil
import sqlite3
from html import unescape
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner

from kit.cli.main import cli
from kit.grader.batch import Submission, grade_class
from kit.grader.classreport import feedback_link, load, render, view, write_report
from kit.grader.course import load_assignment
from kit.grader.gradebook import Gradebook, db_url
from kit.grader.pool import WorkerPool
from kit.grader.report import FORBIDDEN, CheckResult, Problem, Report
from kit.grader.stats import message_pattern, summarize
from tests.browser import ARTIFACTS, Browser, find_chromium
from tests.test_grade import (
    CASES,
    GRADE_FLAGS,
    HW1,
    SOLUTION,
    STUB,
    Member,
    expected,
    fake_task,
    hand_in,
    kit,
    make_course,
)

slow = pytest.mark.slow
URL = re.compile(r"https?://", re.I)


# -- grouping and statistics ------------------------------------------------------------------------------

def test_message_patterns_group_the_same_mistake_with_other_numbers():
    a = ("output: values differ (float64, rtol=1e-07, atol=1e-07)\n  mismatched elements: 3 / 12 (25.0%)\n"
         "  greatest absolute difference: 0.263 at index (0, 2) (got 0.269878, expected 0.00641393)")
    b = ("output: values differ (float64, rtol=1e-07, atol=1e-07)\n  mismatched elements: 5 / 12 (41.7%)\n"
         "  greatest absolute difference: -1.5e+03 at index (1, 0, 4) (got 7, expected -2)")
    assert message_pattern(a) == message_pattern(b)
    assert "float64" in message_pattern(a) and "# / # (#%)" in message_pattern(a)
    assert message_pattern(a) != message_pattern("output: values differ (float32, rtol=1e-07, atol=1e-07)")
    assert message_pattern("not found in /c/submitted/ann/hw1", "ann") == \
           message_pattern("not found in /c/submitted/bob/hw1", "bob")


def report(*checks: tuple, problems: tuple = ()) -> Report:
    """A report from (id, status, message[, hidden[, reason]]) tuples; each check is worth 1 point."""
    out = []
    for id_, status, message, *rest in checks:
        hidden, reason = (list(rest) + [False, ""])[:2]
        out.append(CheckResult(id_, "A", status, 1.0 if status == "passed" else 0.0, 1.0, message, hidden=hidden,
                               reason=reason))
    return Report("hw1", out, problems=list(problems))


def test_summary_counts_verdicts_groups_messages_and_says_problems_once():
    forbidden = Problem(FORBIDDEN, "uses a forbidden API: torch.addmm (my_linear.py, line 3)", "A")
    summary = summarize({
        "ann": report(("fwd", "passed", ""), ("grad", "passed", ""), ("secret", "passed", "", True)),
        "bob": report(("fwd", "failed", "mismatched elements: 3 / 12"), ("grad", "error", "boom"),
                      ("secret", "failed", "off by 0.5", True)),
        "cy": report(("fwd", "failed", "mismatched elements: 7 / 12"), ("grad", "failed", "boom"),
                     ("secret", "failed", "off by 2", True)),
        "dee": report(("fwd", "failed", forbidden.message, False, FORBIDDEN),
                      ("grad", "failed", forbidden.message, False, FORBIDDEN), problems=(forbidden,)),
    })
    checks = {c["check"]: c for c in summary["checks"]}
    assert (checks["fwd"]["passed"], checks["fwd"]["failed"], checks["fwd"]["forbidden"]) == (1, 3, 1)
    assert checks["fwd"]["messages"] == [{"pattern": "mismatched elements: # / #", "count": 2,
                                          "students": ["bob", "cy"], "example": "mismatched elements: 3 / 12"}]
    assert [(m["count"], m["students"]) for m in checks["grad"]["messages"]] == [(2, ["bob", "cy"])]
    assert (checks["grad"]["error"], checks["grad"]["failed"]) == (1, 2)
    assert checks["secret"]["hidden"] and checks["secret"]["messages"][0]["pattern"] == "off by #"
    # over all checks: bob and cy once each, whatever the number of checks
    top = summary["messages"][0]
    assert top["count"] == 2 and top["students"] == ["bob", "cy"]
    assert [(p["kind"], p["count"], p["students"]) for p in summary["problems"]] == [(FORBIDDEN, 1, ["dee"])]
    assert all(forbidden.message not in m["example"] for c in summary["checks"] for m in c["messages"])


# -- the gradebook's notes on grading ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def empty_gradebook(tmp_path_factory) -> Path:
    """A new gradebook, made once (nbgrader stamps a new database with alembic: seconds): tests copy it."""
    folder = tmp_path_factory.mktemp("empty-gradebook")
    with Gradebook(db_url(folder)):
        pass
    return folder / "gradebook.db"


@pytest.fixture
def book_url(empty_gradebook, tmp_path) -> str:
    """The URL of a fresh, empty gradebook at tmp_path/gradebook.db."""
    shutil.copy(empty_gradebook, tmp_path / "gradebook.db")
    return db_url(tmp_path)


def test_grading_times_and_failures_are_kept_and_forgotten_when_they_should_be(book_url):
    url = book_url
    ok = report(("fwd", "passed", ""))
    with Gradebook(url) as book:
        book.record("hw1", "ann", ok, content_hash="h", suite_hash="s", seconds=2.5, node="here")
        book.record_not_graded("hw1", {"bob": "the worker died 3 times", "cy": "died"}, seconds={"bob": 9.0})
        attempts = book.attempts("hw1")
        assert (attempts["ann"].seconds, attempts["ann"].node, attempts["ann"].error) == (2.5, "here", None)
        assert (attempts["bob"].seconds, attempts["bob"].error) == (9.0, "the worker died 3 times")
        book.record("hw1", "bob", ok, content_hash="h", suite_hash="s", seconds=1.0)  # graded at last
        assert book.attempts("hw1")["bob"].error is None
        book.record_not_graded("hw1", {"dee": "link"}, replace={"ann"})  # --student ann: cy's note stays
        assert {s for s, a in book.attempts("hw1").items() if a.error} == {"cy", "dee"}
        book.record_not_graded("hw1", {}, replace=True)  # a full run where everything graded
        assert not any(a.error for a in book.attempts("hw1").values())
        assert book.attempts("hw2") == {}


def test_a_gradebook_from_before_grading_times_still_makes_a_report(book_url, tmp_path):
    url = book_url
    with Gradebook(url) as book:
        book.record("hw1", "ann", report(("fwd", "passed", "")), content_hash="h", suite_hash="s")
    con = sqlite3.connect(tmp_path / "gradebook.db")
    con.execute("DROP TABLE kit_attempt")  # what an older kit left
    con.commit()
    con.close()
    with Gradebook(url) as book:
        data = load(book, "hw1")
    assert data.attempts == {} and list(data.reports) == ["ann"]
    page = view(data, feedback_href=lambda s: f"{s}.html")
    assert not page["times_known"] and page["slowest"] == [] and page["students"][0]["seconds"] is None


@slow
def test_a_worker_that_dies_is_listed_as_not_graded_with_why(book_url, tmp_path):
    """The real pool, a task that kills its worker for `crash` (as the OOM killer would), a real gradebook."""
    spec = load_assignment(HW1)
    subs = [Submission(name, tmp_path / name, "hash") for name in ("a", "crash", "b")]
    with Gradebook(book_url) as book:
        run = grade_class(spec, subs, book, WorkerPool(2, False, task=fake_task, max_attempts=1))
        book.record_not_graded(spec.name, run.errors, seconds=run.seconds, replace=True)  # as kit grade does
        page = view(load(book, spec.name), feedback_href=lambda s: s)
    assert [s["name"] for s in page["not_graded"]] == ["crash"]
    assert page["not_graded"][0]["error"].startswith("a grading worker died 1 times")
    assert sorted(s["student"] for s in page["slowest"]) == ["a", "b"]
    assert all(s["seconds"] > 0 and s["node"] == "here" for s in page["slowest"])


# -- the page, without a browser ---------------------------------------------------------------------------

HOSTILE = '</pre><script>console.error("injected")</script><img src="https://example.com/x.png">'


def hostile_class(url: str) -> None:
    """A gradebook whose stored messages try to inject markup, a script and a remote image."""
    with Gradebook(url) as book:
        book.record("hw1", "ann", report(("fwd", "passed", ""), ("secret", "passed", "", True)),
                    content_hash="h", suite_hash="s", seconds=1.5)
        book.record("hw1", "bob", report(("fwd", "failed", HOSTILE), ("secret", "failed", "hidden: off by 2", True)),
                    content_hash="h", suite_hash="s", seconds=3.0)
        book.record_not_graded("hw1", {"cy": HOSTILE})


def test_the_page_escapes_what_students_wrote_and_loads_nothing(book_url):
    hostile_class(book_url)
    with Gradebook(book_url) as book:
        html = render(load(book, "hw1", title="MyLinear"), feedback_href=lambda s: f"fb/{s}.html")
    assert "<script>console" not in html and "&lt;script&gt;console.error" in html
    assert not URL.search(html.replace("https://example.com/x.png", "")), "the page names a URL of its own"
    assert '<img src="https://example.com' not in html
    # the page's one script runs because the CSP allows exactly its hash, and nothing else
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    csp = unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1))
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp
    assert html.count("<svg") == 3


def test_feedback_links_are_relative_to_the_report(tmp_path):
    href = feedback_link(tmp_path / "feedback", tmp_path / "reports" / "hw1.html", "hw1")
    assert href("ann") == "../feedback/ann/hw1/feedback.html"
    assert unquote(href("a+b@x")) == "../feedback/a+b@x/hw1/feedback.html"
    assert href("a b#") == "../feedback/a%20b%23/hw1/feedback.html"  # a URL, not a path


def test_report_usage_errors(empty_gradebook, tmp_path):
    help_text = CliRunner().invoke(cli, ["report", "--help"])
    assert help_text.exit_code == 0 and "--html" in help_text.output and "--feedback" in help_text.output
    run = CliRunner().invoke(cli, ["report", "hw1", "--course", str(tmp_path), "--html", "x.html"])
    assert run.exit_code == 2 and "kit.toml" in run.output
    course = make_course(tmp_path / "course")
    run = CliRunner().invoke(cli, ["report", "hw1", "--course", str(course), "--html", "x.html"])
    assert run.exit_code == 2 and "no gradebook at" in run.output and "kit grade hw1" in run.output
    run = CliRunner().invoke(cli, ["report", "hw1", "--course", str(course)])
    assert run.exit_code == 2 and "--html" in run.output
    run = CliRunner().invoke(cli, ["report", "hw99", "--course", str(course), "--html", "x.html"])
    assert run.exit_code == 2
    shutil.copy(empty_gradebook, course / "gradebook.db")
    run = CliRunner().invoke(cli, ["report", "hw1", "--course", str(course), "--html", str(tmp_path / "x.html")])
    assert run.exit_code == 2 and "nothing graded" in run.output
    assert not (tmp_path / "x.html").exists()


# -- a real graded class ------------------------------------------------------------------------------------

def biased(k: int) -> str:
    """The solution with its bias added k times: the same mistake as another k, with other numbers."""
    text = SOLUTION.read_text()
    assert "y = y + self.bias" in text
    return text.replace("y = y + self.bias", f"y = y + {k} * self.bias")


def class_members() -> list[Member]:
    def case(name: str, student: str) -> Member:
        score, failing = expected(CASES / name)
        return Member(student, CASES / name / "my_linear.py", score, failing)

    return [Member("ann", SOLUTION, 21.0, set()), Member("bob", SOLUTION, 21.0, set()),
            case("bias_ignored", "cy"), case("transposed_weight", "dee"), case("crash_forward", "eve"),
            case("syntax_error", "fay"), Member("gus", STUB, 0.0, None), case("forbidden_plain", "hal"),
            Member("jo", biased(2), -1, None), Member("kim", biased(3), -1, None),
            Member("lee", None, 0.0, None)]


class GradedClass:
    def __init__(self, course: Path, grade, feedback, report_run, report_file: Path) -> None:
        self.course, self.grade, self.feedback, self.report_run, self.report = \
            course, grade, feedback, report_run, report_file
        self.html = report_file.read_text(encoding="utf-8")
        con = sqlite3.connect(course / "gradebook.db")
        self.reports = {s: Report.from_json(json.loads(r)) for s, r in
                        con.execute("SELECT student, report FROM kit_result WHERE assignment = 'hw1'")}
        self.seconds = dict(con.execute("SELECT student, seconds FROM kit_attempt WHERE error IS NULL"))
        con.close()


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory) -> GradedClass:
    course = make_course(tmp_path_factory.mktemp("report") / "course")
    hand_in(course, class_members())
    (course / "submitted" / "bad id" / "hw1").mkdir(parents=True)
    (course / "submitted" / "linky").symlink_to(course / "submitted" / "ann")
    grade = kit("grade", "hw1", "-j", "2", *GRADE_FLAGS, cwd=course)
    assert grade.returncode == 1, grade.stdout[-3000:] + grade.stderr[-3000:]
    feedback = kit("feedback", "hw1", cwd=course)
    assert feedback.returncode == 0, feedback.stderr
    last = grade.stdout.strip().splitlines()[-1]
    assert last.startswith("class report: kit report hw1 --html "), last
    command = shlex.split(last.removeprefix("class report: "))
    report_run = kit(*command[1:], cwd=course)
    assert report_run.returncode == 0, report_run.stderr
    return GradedClass(course, grade, feedback, report_run, course / command[command.index("--html") + 1])


@slow
def test_the_report_shows_the_gradebook(graded_class):
    reports = graded_class.reports
    assert sorted(reports) == sorted(m.student for m in class_members())
    for m in class_members():
        if m.score >= 0:
            assert reports[m.student].score == pytest.approx(m.score), m.student
    with Gradebook(db_url(graded_class.course)) as book:
        page = view(load(book, "hw1"), feedback_href=lambda s: s)
    assert [(s["student"], s["score"]) for s in page["students"]] == sorted((s, r.score) for s, r in reports.items())
    assert page["summary"]["mean"] == pytest.approx(sum(r.score for r in reports.values()) / len(reports), abs=1e-3)
    # every submission graded has its grading time; the slowest come first
    assert set(graded_class.seconds) == set(reports) and all(t > 0 for t in graded_class.seconds.values())
    assert [s["student"] for s in page["slowest"]] == \
           sorted(graded_class.seconds, key=lambda s: -graded_class.seconds[s])[:len(page["slowest"])]
    # the folders kit grade passed over, and why
    assert {(s["name"], s["error"]) for s in page["not_graded"]} == \
           {("'bad id'", "not a usable student id"), ("linky", "the submission folder is a link")}
    # jo and kim made one mistake with different numbers: one message, two students
    checks = {c["check"]: c for c in page["checks"]}
    forward = {tuple(name for name, _ in m["students"]): m for m in checks["forward"]["messages"]}
    assert reports["jo"].checks[0].message != reports["kim"].checks[0].message
    assert ("jo", "kim") in forward, list(forward)
    # the problems are said once, not once per check
    assert {(p["kind"], tuple(n for n, _ in p["students"])) for p in page["problems"]} >= \
           {("unusable", ("fay",)), ("forbidden", ("hal",))}


@slow
def test_the_report_is_offline_and_shows_hidden_checks(graded_class):
    html = graded_class.html
    assert not URL.search(html), URL.search(html)
    hidden = [c for c in graded_class.reports["cy"].checks if c.hidden and c.status == "failed"]
    assert hidden
    for c in hidden:
        assert c.id in html
        first = message_pattern(c.message).splitlines()[0]
        assert first in unescape(html), c.id


# -- in a real browser ---------------------------------------------------------------------------------------

CHROMIUM = find_chromium()
REQUIRED = os.environ.get("KIT_REQUIRE_BROWSER") == "1"


def test_browser_available_where_required():
    """CI sets KIT_REQUIRE_BROWSER=1, so that a missing chromium fails instead of skipping the browser tests."""
    if REQUIRED:
        assert CHROMIUM, "KIT_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail("KIT_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium): the browser tests need a real browser")
    with Browser(CHROMIUM) as b:
        yield b


def loaded_cleanly(page, path: Path) -> None:
    """No error of any kind in the console, and nothing fetched but the page itself."""
    assert page.errors == [], page.errors
    assert page.requests == [path.resolve().as_uri()], page.requests


def test_injected_markup_stays_text_in_the_browser(browser, book_url, tmp_path):
    hostile_class(book_url)
    with Gradebook(book_url) as book:
        out = write_report(load(book, "hw1"), tmp_path / "report.html", feedback_dir=tmp_path / "feedback")
    page = browser.open(out.as_uri())
    loaded_cleanly(page, out)
    assert page.evaluate("document.scripts.length") == 1 and page.evaluate("document.images.length") == 0
    assert 'console.error("injected")' in page.evaluate("document.body.textContent")


@slow
def test_the_class_page_in_a_browser(browser, graded_class):
    page = browser.open(graded_class.report.as_uri())
    loaded_cleanly(page, graded_class.report)
    # the charts: three inline SVGs, drawn (bars are paths), with their labels as text
    charts = page.evaluate("Array.from(document.querySelectorAll('svg.chart')).map(s => "
                           "[s.id, s.querySelectorAll('path').length, s.getBoundingClientRect().height])")
    assert [c[0] for c in charts] == ["chart-totals", "chart-components", "chart-checks"]
    assert all(paths > 5 and height > 50 for _, paths, height in charts), charts
    assert "hidden_shapes[a]" in page.evaluate("document.getElementById('chart-checks').textContent")
    # hidden checks and what they said are on the instructor's page
    text = page.evaluate("document.body.textContent")
    for c in graded_class.reports["cy"].checks:
        if c.hidden and c.status == "failed":
            assert c.id in text and message_pattern(c.message).splitlines()[0] in text, c.id
    assert page.evaluate("document.querySelectorAll('.badge.hidden').length") > 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(ARTIFACTS / "class-report.png")

    # sorting: a real click on a header, in the browser
    def rows() -> list[tuple[str, float]]:
        return [(r[0], float(r[1])) for r in page.evaluate(
            "Array.from(document.querySelectorAll('#student-table tbody tr')).map(r => "
            "[r.dataset.student, r.cells[1].dataset.sort])")]

    scores = {s: r.score for s, r in graded_class.reports.items()}
    assert [s for s, _ in rows()] == sorted(scores)
    page.click("#student-table thead th:nth-child(2) button")
    assert rows() == sorted(scores.items(), key=lambda kv: (kv[1], kv[0]))
    assert page.evaluate("document.querySelector('#student-table th:nth-child(2)').getAttribute('aria-sort')") == \
        "ascending"
    page.click("#student-table thead th:nth-child(2) button")
    assert [v for _, v in rows()] == sorted(scores.values(), reverse=True)
    page.click("#student-table thead th:nth-child(1) button")
    assert [s for s, _ in rows()] == sorted(scores)
    assert page.errors == []

    # every student's link points at their feedback page, and following one opens it
    hrefs = dict(page.evaluate("Array.from(document.querySelectorAll('#student-table tbody tr')).map(r => "
                               "[r.dataset.student, r.querySelector('a').getAttribute('href')])"))
    for student, href in hrefs.items():
        target = (graded_class.report.parent / unquote(href)).resolve()
        assert target == graded_class.course / "feedback" / student / "hw1" / "feedback.html" and target.is_file()
    since = len(browser.events)
    page.click("#student-table tbody tr[data-student='cy'] a")
    browser.wait_for("Page.loadEventFired", page.session, since=since)
    assert page.evaluate("document.title").endswith("— cy")


@slow
@pytest.mark.parametrize("student", ["cy", "fay", "ann"])
def test_feedback_pages_in_a_browser_redact_hidden_checks(browser, graded_class, student):
    path = graded_class.course / "feedback" / student / "hw1" / "feedback.html"
    assert not URL.search(path.read_text(encoding="utf-8"))
    page = browser.open(path.as_uri())
    loaded_cleanly(page, path)
    html = page.evaluate("document.documentElement.outerHTML")
    text = page.evaluate("document.body.textContent")
    checks = graded_class.reports[student].checks
    public = "\n".join(f"{c.message}\n{c.description}\n{c.output}" for c in checks if not c.hidden)
    hidden = [c for c in checks if c.hidden]
    assert hidden
    secrets = 0
    for c in hidden:
        assert c.id in text  # the verdict is there...
        for line in (c.message + "\n" + c.description + "\n" + c.output).splitlines():
            line = line.strip()
            if len(line) > 12 and line not in public:  # ...and nothing it said
                secrets += 1
                assert line not in html, f"{student}: hidden {c.id} leaked {line!r}"
    assert secrets, "nothing secret to look for: the test would prove nothing"
    failed = [c for c in hidden if c.status == "failed"]
    assert text.count("hidden check failed") == len(failed)
    page.screenshot(ARTIFACTS / f"feedback-{student}.png")
