"""Speed benchmark (issue 7): `kit check` against a bare torch import, `kit grade` against nbgrader.

    /work/venv/bin/python bench/run.py [--n 200] [--repeat 5] [--jobs 1,2] [--sizes 1,20] [--skip-nbgrader]
                                       [--only check|fixed|grade] [--out FILE] [--keep DIR]

prints one Markdown report on stdout (progress goes to stderr):

* machine facts: CPUs, Python, torch, whether kit's sandbox (bubblewrap) is in use, commit;
* `kit check hwN --path solutions/hwN` and `kit check hwN` (the stubs) for hw1..hw12, each timed as
  a subprocess from the repository root, median of --repeat runs after one warm-up, and its ratio
  to the median of `python -c "import torch"`, which is timed right before every kit command;
  each is timed as a student repeats it (the references kit check keeps on disk are there) and
  as a first run (an empty $XDG_CACHE_HOME: after installing, or after the suite changed);
* the fixed cost of `kit grade` for few submissions (--sizes, default 1 and 20 generated hw2
  submissions): the median of --repeat runs of `kit grade` (a fresh gradebook each), against
  `kit check` of the same submission for one, and against `nbgrader autograde` per submission;
* `kit grade hw2` on --n generated submissions (bench/nbgrader/make_class.py) with each --jobs
  value, and `nbgrader autograde` on the same submissions: wall time, throughput, the ratio
  nbgrader / kit, and how many kit scores differ from the variants' expected.toml.

The script only shells out to `kit`, `python` and nbgrader, so it measures whatever engine is
installed. Run it with the interpreter of the environment kit is installed in.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench" / "nbgrader"))

import make_class  # noqa: E402  (bench/nbgrader, put on sys.path above)
import run_autograde  # noqa: E402

ASSIGNMENTS = [f"hw{i}" for i in range(1, 13)]
GRADED = "hw2"  # the assignment make_class.py generates submissions for
BASELINE = "python -c \"import torch\""
MAX_LISTED = 10  # mismatching students listed under the grading table


def progress(message: str) -> None:
    """Progress goes to stderr so that stdout stays a clean Markdown document."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def bench_env() -> dict[str, str]:
    """This interpreter's bin/ first on PATH: `kit` and `alembic` (run by nbgrader's Gradebook
    when it creates a database) are found there even when the venv is not activated."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def kit_command() -> str:
    """The `kit` a student would run: the one next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "kit"
    found = str(beside) if beside.is_file() else shutil.which("kit")
    if not found:
        raise SystemExit("no `kit` next to this interpreter or on PATH: pip install -e . first")
    return found


def timed(argv: list[str], capture: bool = False, cache_home: str | None = None,
          ) -> tuple[float, subprocess.CompletedProcess]:
    """Wall time of one subprocess run from the repository root, as a student would start it
    (with $XDG_CACHE_HOME, where kit check keeps references, set to `cache_home` if given)."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    env = bench_env() if cache_home is None else {**bench_env(), "XDG_CACHE_HOME": cache_home}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env, stdout=out, stderr=out, text=capture)
    return time.perf_counter() - t0, proc


# ---------------------------------------------------------------- machine facts


def cpu_model() -> str:
    """/proc/cpuinfo's model name: platform.processor() is often empty on Linux."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    """The commit measured, marked dirty when the working tree differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO,  # new files count too
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (with uncommitted changes)" if dirty else "")


def load_average() -> str:
    """Other work on the machine slows every figure: the load says how much there was."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def load_1min() -> str:
    """The 1-minute load average, noted before each grading run."""
    return load_average().split(",")[0]


def sandbox_fact(kit: str) -> str:
    """kit prints a "no sandbox" note when student code runs without bubblewrap: look for it."""
    _, proc = timed([kit, "check", "hw1", "--path", "solutions/hw1"], capture=True)
    for line in (proc.stdout + proc.stderr).splitlines():
        if "no sandbox" in line:
            return f"no: kit says \"{line.strip()}\""
    return "yes (no \"no sandbox\" note from `kit check`)"


def machine_facts(kit: str) -> dict[str, str]:
    """What a reader needs to compare these figures with their own."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 0
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPUs usable": f"{cores} ({cpu_model()})",
        "load average (1, 5, 15 min) at start": load_average(),
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "torch": importlib.metadata.version("torch"),
        "nbgrader": importlib.metadata.version("nbgrader"),
        "bubblewrap sandbox": sandbox_fact(kit),
        "kit": f"{kit}, course {REPO}",
        "commit": git_commit(),
    }


# ---------------------------------------------------------------- kit check


@dataclass
class Series:
    """Repeated wall times of one command, and the exit statuses it returned."""
    label: str
    argv: list[str]
    times: list[float] = field(default_factory=list)
    first_times: list[float] = field(default_factory=list)
    exits: set[int] = field(default_factory=set)

    def run(self) -> float:
        seconds, proc = timed(self.argv)
        self.times.append(seconds)
        self.exits.add(proc.returncode)
        return seconds

    def run_first(self) -> float:
        """A run with an empty cache folder: nothing kept from an earlier run."""
        with tempfile.TemporaryDirectory(prefix="kit-bench-cache-") as empty:
            seconds, proc = timed(self.argv, cache_home=empty)
        self.first_times.append(seconds)
        self.exits.add(proc.returncode)
        return seconds


def check_series(kit: str) -> list[Series]:
    """kit check on every solution (full marks) and every stub (zero), as students run it."""
    series = []
    for hw in ASSIGNMENTS:
        series.append(Series(f"kit check {hw} --path solutions/{hw}",
                             [kit, "check", hw, "--path", f"solutions/{hw}"]))
        series.append(Series(f"kit check {hw}", [kit, "check", hw]))
    return series


def bench_check(kit: str, repeat: int) -> tuple[Series, list[Series]]:
    """One warm-up of everything, then `repeat` rounds; the torch import is timed right before
    each kit command, so load changes during the run hit both alike."""
    baseline = Series(BASELINE, [sys.executable, "-c", "import torch"])
    series = check_series(kit)
    progress(f"kit check: warm-up ({len(series)} commands)")
    for s in [baseline, *series]:
        s.run()
        s.times.clear()
    for r in range(1, repeat + 1):
        for s in series:
            base = baseline.run()
            progress(f"kit check round {r}/{repeat}: import torch {base:.2f} s, {s.label} {s.run():.2f} s, "
                     f"first run {s.run_first():.2f} s")
    return baseline, series


def check_table(baseline: Series, series: list[Series], repeat: int) -> str:
    """Markdown: median, min, ratio of medians to the torch import, exit status."""
    base = statistics.median(baseline.times)
    rows = [f"#### `kit check` against `{BASELINE}`",
            "",
            f"Median of {repeat} runs after one warm-up; the import is timed before every kit command "
            f"({len(baseline.times)} times).",
            "",
            "Repeated: the references kept by the previous run are there, as in a student's second and later "
            "runs. First run: an empty `$XDG_CACHE_HOME`, as after installing kit or changing the suite.",
            "",
            "| command | repeated: median (s) | min (s) | median / import torch | first run: median (s) "
            "| median / import torch | exit status |",
            "|---|---:|---:|---:|---:|---:|---|"]
    rows.append(f"| `{baseline.label}` | {base:.2f} | {min(baseline.times):.2f} | 1.00× | | | "
                f"{', '.join(map(str, sorted(baseline.exits)))} |")
    for s in series:
        median, first = statistics.median(s.times), statistics.median(s.first_times)
        exits = ", ".join(map(str, sorted(s.exits)))
        rows.append(f"| `{s.label}` | {median:.2f} | {min(s.times):.2f} | {median / base:.2f}× | {first:.2f} "
                    f"| {first / base:.2f}× | {exits} |")
    return "\n".join(rows)


# ---------------------------------------------------------------- kit grade and nbgrader


@dataclass
class GradeRun:
    """One grading run of the whole class: wall time and what came back."""
    grader: str
    jobs: str
    wall_s: float
    n: int
    graded: int
    load: str
    note: str = ""
    mismatches: list[str] = field(default_factory=list)
    compared: int = 0


def failing_checks(submission: dict) -> set[str]:
    """Checks that cost points, counted as kit's own tests do (GPU checks skipped without CUDA do not)."""
    return {c["id"] for c in submission["checks"] if c["status"] not in ("passed", "skipped")}


def compare_expected(submissions: list[dict], manifest: list[dict]) -> tuple[int, list[str]]:
    """Kit's scores against each variant's expected.toml (score and failing checks): a cross-check
    that the speed was not bought with wrong grades."""
    by_student = {s["student"]: s for s in submissions}
    compared, mismatches = 0, []
    for entry in manifest:
        expected, got = entry["expected"], by_student.get(entry["student"])
        if "score" not in expected or got is None:
            continue
        compared += 1
        want_failing = set(expected.get("failing", []))
        if got["score"] != expected["score"] or failing_checks(got) != want_failing:
            extra = sorted(failing_checks(got) ^ want_failing)
            mismatches.append(f"{entry['student']} ({entry['variant']}): expected {expected['score']:g}, "
                              f"got {got['score']:g}" + (f"; checks differing: {', '.join(extra)}" if extra else ""))
    return compared, mismatches


def bench_kit_grade(kit: str, submitted: Path, work: Path, jobs: int | None, manifest: list[dict],
                    quiet: bool = False, ray: str | None = None) -> GradeRun:
    """`kit grade` of the whole class into a fresh gradebook, with --json to check every report
    (jobs None: kit's default, one worker per core and no more than there are submissions; with
    `ray`, on the Ray cluster at that address)."""
    db = work / f"gradebook-j{jobs or 'default'}{'-ray' if ray else ''}.db"
    db.unlink(missing_ok=True)
    load = load_1min()
    argv = [kit, "grade", GRADED, str(submitted), *(["-j", str(jobs)] if jobs else []), "--db", f"sqlite:///{db}",
            "--force", "--json", *(["--ray", ray] if ray else [])]
    if not quiet:
        progress(f"kit grade -j {jobs or 'default'}: {len(manifest)} submissions")
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=bench_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True)
    wall = time.perf_counter() - t0
    run = GradeRun("`kit grade`", str(jobs or "default"), wall, len(manifest), 0, load)
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        run.note = f"exit {proc.returncode}, no JSON document"
        progress(f"kit grade -j {jobs or 'default'}: {run.note}")
        return run
    run.graded = len(doc.get("submissions", []))
    run.compared, run.mismatches = compare_expected(doc.get("submissions", []), manifest)
    if doc.get("not_graded"):
        run.note = f"{len(doc['not_graded'])} not graded"
    if not quiet:
        progress(f"kit grade -j {jobs or 'default'}: {wall:.1f} s, {run.graded} reports, "
                 f"{len(run.mismatches)} mismatches")
    return run


def bench_nbgrader(course: Path, work: Path, n: int) -> GradeRun:
    """nbgrader autograde (serial, one kernel per notebook) on the same submissions."""
    progress(f"nbgrader autograde: {n} submissions (about 3.5 s each)")
    load = load_1min()
    result = run_autograde.autograde(course, log=work / "autograde.log")
    graded = sum(1 for r in result["students"].values() if r["graded"])
    note = f"exit {result['returncode']}" if result["returncode"] else ""
    progress(f"nbgrader autograde: {result['wall_s']:.1f} s, {graded} graded")
    return GradeRun("`nbgrader autograde`", "1 (serial)", result["wall_s"], result["n"], graded, load, note)


def make_submissions(n: int, work: Path) -> list[dict]:
    """The class: work/nbgrader (course) and work/kit/submitted, the same code for both."""
    variants = make_class.find_variants()
    progress(f"generating {n} submissions over {len(variants)} variants in {work}")
    make_class.use_venv_path()
    return make_class.make_class(n, work / "nbgrader", work / "kit", variants, force=True)


def grade_table(runs: list[GradeRun], nbgrader: GradeRun | None, n: int, variants: int) -> str:
    """Markdown: wall, throughput, nbgrader / kit, and the score cross-check."""
    rows = [f"#### `kit grade {GRADED}` against `nbgrader autograde`",
            "",
            f"{n} generated submissions (cycling over {variants} variants, correct and wrong), one run each. "
            "Load before: the 1-minute load average as the run started.",
            "",
            "| grader | jobs | wall (s) | submissions/s | s/submission | nbgrader / this | reports | "
            "scores differing from expected.toml | load before | note |",
            "|---|---|---:|---:|---:|---:|---:|---|---:|---|"]
    for run in [*runs, *([nbgrader] if nbgrader else [])]:
        ratio = f"{nbgrader.wall_s / run.wall_s:.2f}×" if nbgrader else "not run"
        cross = "n/a (other points)" if run is nbgrader else f"{len(run.mismatches)} of {run.compared}"
        rows.append(f"| {run.grader} | {run.jobs} | {run.wall_s:.1f} | {run.n / run.wall_s:.2f} | "
                    f"{run.wall_s / run.n:.2f} | {ratio} | {run.graded}/{run.n} | {cross} | {run.load} | {run.note} |")
    listed = [m for run in runs for m in run.mismatches[:MAX_LISTED]]
    if listed:
        rows += ["", "Scores differing from expected.toml (at most "
                 f"{MAX_LISTED} per run):", ""] + [f"- {m}" for m in listed]
    return "\n".join(rows)


def bench_grade(kit: str, n: int, jobs: list[int], skip_nbgrader: bool, keep: Path | None) -> str:
    """Generate the class, grade it with kit for every jobs value, then with nbgrader."""
    work = keep.resolve() if keep else Path(tempfile.mkdtemp(prefix="kit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        manifest = make_submissions(n, work)
        runs = [bench_kit_grade(kit, work / "kit" / "submitted", work, j, manifest) for j in jobs]
        nbgrader = None if skip_nbgrader else bench_nbgrader(work / "nbgrader", work, n)
        variants = len({m["variant"] for m in manifest})
        return grade_table(runs, nbgrader, n, variants)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            progress(f"class kept in {work}")


# ---------------------------------------------------------------- the fixed cost of kit grade


@dataclass
class SmallClass:
    """kit grade of a class of `n` (repeated), kit check of its first submission, nbgrader on the same."""
    n: int
    grade: list[GradeRun] = field(default_factory=list)
    check: list[float] = field(default_factory=list)
    nbgrader: GradeRun | None = None

    @property
    def grade_s(self) -> float:
        return statistics.median(r.wall_s for r in self.grade)


def bench_small(kit: str, n: int, repeat: int, skip_nbgrader: bool) -> SmallClass:
    """`repeat` runs (after a warm-up) of kit grade of `n` submissions, each into a fresh gradebook with
    kit's default -j; for one submission kit check of it right before each; then nbgrader once."""
    work = Path(tempfile.mkdtemp(prefix=f"kit-bench-{n}-"))
    try:
        manifest = make_submissions(n, work)
        submitted = work / "kit" / "submitted"
        first = submitted / manifest[0]["student"] / GRADED
        check = [kit, "check", GRADED, "--path", str(first)]
        small = SmallClass(n)
        timed(check)
        bench_kit_grade(kit, submitted, work, None, manifest, quiet=True)
        for r in range(1, repeat + 1):
            line = f"{n} submission(s), round {r}/{repeat}:"
            if n == 1:
                small.check.append(timed(check)[0])
                line += f" kit check {small.check[-1]:.2f} s,"
            small.grade.append(bench_kit_grade(kit, submitted, work, None, manifest, quiet=True))
            progress(f"{line} kit grade {small.grade[-1].wall_s:.2f} s")
        if not skip_nbgrader:
            small.nbgrader = bench_nbgrader(work / "nbgrader", work, n)
        return small
    finally:
        shutil.rmtree(work, ignore_errors=True)


def small_table(classes: list[SmallClass], repeat: int) -> str:
    """Markdown: kit grade of few submissions against kit check of one and nbgrader per submission."""
    rows = ["#### The fixed cost: `kit grade` of few submissions",
            "",
            f"Generated {GRADED} submissions; kit grade with its default `-j` (one worker per core, no more than "
            f"there are submissions), median of {repeat} runs after one warm-up, each into a fresh gradebook; "
            "for one submission, `kit check --path` of that submission timed right before each run. "
            "Targets (issue 16): one submission at most 2× `kit check` of it; 20 submissions at least 15× "
            "faster than nbgrader autograde per submission.",
            "",
            "| submissions | kit check (s) | kit grade (s) | kit grade / kit check | kit s/submission | "
            "nbgrader autograde (s) | nbgrader s/submission | nbgrader / kit per submission | "
            "scores differing from expected.toml |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in classes:
        check = f"{statistics.median(c.check):.2f}" if c.check else ""
        ratio = f"{c.grade_s / statistics.median(c.check):.2f}×" if c.check else ""
        nb = f"{c.nbgrader.wall_s:.1f}" if c.nbgrader else "not run"
        nb_per = f"{c.nbgrader.wall_s / c.n:.2f}" if c.nbgrader else ""
        versus = f"{c.nbgrader.wall_s / c.grade_s:.1f}×" if c.nbgrader else ""
        differing = sum(len(r.mismatches) for r in c.grade)
        compared = sum(r.compared for r in c.grade)
        rows.append(f"| {c.n} | {check} | {c.grade_s:.2f} | {ratio} | {c.grade_s / c.n:.3f} | {nb} | {nb_per} | "
                    f"{versus} | {differing} of {compared} |")
    return "\n".join(rows)


# ---------------------------------------------------------------- kit grade on a Ray cluster


def start_ray_cluster(nodes: int):
    """A Ray cluster of `nodes` one-CPU nodes on 127.0.0.1 (ray.cluster_utils, as kit's tests use);
    Ray is imported here only, and kept on the loopback address (see tests/test_ray.py)."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 80 << 20,
                                                            "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=1, object_store_memory=80 << 20)
    cluster.wait_for_nodes()
    return cluster


def bench_ray(kit: str, sizes: list[int], nodes: int) -> str:
    """kit grade of each class size on this machine (-j `nodes`) and on a local Ray cluster of `nodes` one-CPU
    nodes: the fixed cost and the cost per submission of each, from the smallest and the largest size."""
    cluster = start_ray_cluster(nodes)
    progress(f"Ray cluster of {nodes} nodes at {cluster.address}")
    rows = ["#### `kit grade` on a Ray cluster against this machine's workers",
            "",
            f"A Ray cluster of {nodes} one-CPU nodes on this machine (ray.cluster_utils, loopback only) against "
            f"`kit grade -j {nodes}`; each run into a fresh gradebook. Per submission: the slope between the "
            "smallest and the largest class; fixed: what is left.",
            "",
            "| grader | " + " | ".join(f"{n} submissions (s)" for n in sizes) + " | s per submission | fixed (s) "
            "| note |",
            "|---|" + "---:|" * (len(sizes) + 2) + "---|"]
    try:
        local: list[GradeRun] = []
        on_ray: list[GradeRun] = []
        for n in sizes:
            work = Path(tempfile.mkdtemp(prefix=f"kit-bench-ray-{n}-"))
            try:
                manifest = make_submissions(n, work)
                submitted = work / "kit" / "submitted"
                local.append(bench_kit_grade(kit, submitted, work, nodes, manifest))
                on_ray.append(bench_kit_grade(kit, submitted, work, None, manifest, ray=cluster.address))
            finally:
                shutil.rmtree(work, ignore_errors=True)
        for label, runs in ((f"`kit grade -j {nodes}`", local), (f"`kit grade --ray` ({nodes} nodes)", on_ray)):
            first, last = runs[0], runs[-1]
            slope = (last.wall_s - first.wall_s) / (last.n - first.n) if last.n > first.n else last.wall_s / last.n
            notes = [r.note for r in runs if r.note] + [f"{len(r.mismatches)} scores off" for r in runs if r.mismatches]
            rows.append(f"| {label} | " + " | ".join(f"{r.wall_s:.1f}" for r in runs) +
                        f" | {slope:.3f} | {first.wall_s - slope * first.n:.1f} | {'; '.join(notes)} |")
    finally:
        cluster.shutdown()
    return "\n".join(rows)


# ---------------------------------------------------------------- main


def facts_table(facts: dict[str, str]) -> str:
    """Markdown table of the machine facts."""
    return "\n".join(["| machine | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in facts.items()])


def parse_counts(text: str) -> list[int]:
    """--jobs 1,2 (or --sizes) → [1, 2]."""
    try:
        jobs = [int(j) for j in text.split(",") if j.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not jobs or min(jobs) < 1:
        raise argparse.ArgumentTypeError("each must be an integer of at least 1")
    return jobs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Every part can be run alone: the whole benchmark takes about 25 minutes on 2 cores."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="submissions graded (default 200)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per kit check command (default 5)")
    ap.add_argument("--jobs", type=parse_counts, default=[1, 2], help="kit grade -j values (default 1,2)")
    ap.add_argument("--sizes", type=parse_counts, default=[1, 20],
                    help="class sizes of the fixed-cost part (default 1,20)")
    ap.add_argument("--skip-nbgrader", action="store_true", help="do not run nbgrader autograde (~3.5 s each)")
    ap.add_argument("--only", choices=["check", "fixed", "grade", "ray"],
                    help="run only this part (ray: only when asked; needs pip install 'kit[ray]')")
    ap.add_argument("--ray-sizes", type=parse_counts, default=[20, 100],
                    help="class sizes of the ray part (default 20,100)")
    ap.add_argument("--ray-nodes", type=int, default=2, help="one-CPU nodes of the ray part's cluster (default 2)")
    ap.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    ap.add_argument("--keep", type=Path, help="generate the class in this folder (its nbgrader/ and kit/ "
                                              "are replaced) and keep it")
    args = ap.parse_args(argv)
    if args.n < 1 or args.repeat < 1:
        ap.error("--n and --repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kit = kit_command()
    progress("machine facts (one kit check run)")
    sections = ["### kit benchmark", "", facts_table(machine_facts(kit))]
    if args.only in (None, "check"):
        baseline, series = bench_check(kit, args.repeat)
        sections += ["", check_table(baseline, series, args.repeat)]
    if args.only in (None, "fixed"):
        small = [bench_small(kit, n, args.repeat, args.skip_nbgrader) for n in args.sizes]
        sections += ["", small_table(small, args.repeat)]
    if args.only in (None, "grade"):
        sections += ["", bench_grade(kit, args.n, args.jobs, args.skip_nbgrader, args.keep)]
    if args.only == "ray":
        sections += ["", bench_ray(kit, args.ray_sizes, args.ray_nodes)]
    sections += ["", f"Load average (1, 5, 15 min) at the end: {load_average()}."]
    report = "\n".join(sections) + "\n"
    print(report, end="")
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
