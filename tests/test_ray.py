"""`kit grade --ray`: a real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster: a head
and a worker node of one CPU each, and in some tests a third node, each with its own raylet, object
store and workers, all on 127.0.0.1).

It grades the tests/submissions hw1 class on two nodes with the same verdicts as local grading; kills
a node in the middle of a run, whose fork server and children die with it, and still gets every
grade right, written once; refuses a cluster with a node that has no bubblewrap. About two minutes
on two cores (the cluster takes 15 to 40 s to start); marked slow. Without Ray installed the
tests are skipped, unless KIT_REQUIRE_RAY=1 (CI sets it).
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from pathlib import Path

import pytest

# Ray would advertise this machine's network address; with clusters "disabled" it keeps every
# node, and every connection, on 127.0.0.1 (cluster_utils still starts several nodes).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

if os.environ.get("KIT_REQUIRE_RAY") != "1":
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'kit[ray]')")

from kit.grader.batch import find_submissions, grade_class
from kit.grader.course import load_assignment
from kit.grader.gradebook import Gradebook, db_url
from kit.grader.ray_grader import RayGrader
from tests.conftest import ROOT
from tests.test_grade import CPU_ONLY, SANDBOX, consistent, gradebook_state, make_course

pytestmark = pytest.mark.slow

KIT = str(Path(sys.executable).with_name("kit"))
HW1 = ROOT / "grader" / "suites" / "hw1"
CASES = ROOT / "tests" / "submissions" / "hw1"
SOLUTION = ROOT / "solutions" / "hw1" / "my_linear.py"
FILE = "my_linear.py"
OBJECT_STORE = 80 << 20  # bytes per node: a suite and a few small files at a time
UNSAFE = [] if SANDBOX else ["--unsafe-no-sandbox"]
ENV = {**CPU_ONLY, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

# A correct layer that takes a few seconds to import, in a process the test can find by its name in /proc
# (`sleep`: the sandbox's /proc is read-only, and the guard refuses ctypes, so the child cannot rename itself).
SLEEPER = '''import subprocess
subprocess.run(["sleep", "4"], check=True)
''' + SOLUTION.read_text()


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    started = time.monotonic()
    for attempt in range(2):  # Ray gives a raylet 30 s to register, which a loaded machine can miss
        c = Cluster()
        try:
            c.add_node(num_cpus=1, object_store_memory=OBJECT_STORE, include_dashboard=False)
            c.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
            c.wait_for_nodes()
            break
        except Exception:
            c.shutdown()
            if attempt:
                raise
    print(f"two nodes started in {time.monotonic() - started:.1f} s")
    yield c
    c.shutdown()


def ordinary_cases() -> list[Path]:
    """The hw1 cases that kit grade can grade under the assignment's own limits (not those with [limits])."""
    return [p.parent for p in sorted(CASES.glob("*/expected.toml")) if "limits" not in tomllib.loads(p.read_text())]


def hand_in(course: Path, files: dict[str, str]) -> None:
    for student, text in files.items():
        folder = course / "submitted" / student / "hw1"
        folder.mkdir(parents=True)
        (folder / FILE).write_text(text)


def verdicts(doc: dict) -> dict:
    return {s["student"]: (s["score"], [(c["id"], c["status"], c["points"], c["message"]) for c in s["checks"]])
            for s in doc["submissions"]}


def kit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([KIT, *args], cwd=cwd, capture_output=True, text=True, timeout=900, env=ENV)


def test_the_class_on_two_nodes_gets_the_verdicts_of_local_grading(cluster, tmp_path):
    course = make_course(tmp_path / "course")
    cases = ordinary_cases()
    hand_in(course, {case.name.replace("_", "-"): (case / FILE).read_text() for case in cases})
    folders = set(Path(tempfile.gettempdir()).glob("kit-ray-*"))
    on_ray = kit("grade", "hw1", "--ray", cluster.address, "--json", "--db", str(tmp_path / "ray.db"), *UNSAFE,
                 cwd=course)
    assert on_ray.returncode == 1, on_ray.stderr[-4000:]
    local = kit("grade", "hw1", "-j", "2", "--json", "--db", str(tmp_path / "local.db"), *UNSAFE, cwd=course)
    assert local.returncode == 1, local.stderr[-4000:]
    ray_doc, local_doc = json.loads(on_ray.stdout), json.loads(local.stdout)
    assert set(Path(tempfile.gettempdir()).glob("kit-ray-*")) <= folders  # each actor removed its copy of the class

    assert not ray_doc["not_graded"] and len(ray_doc["submissions"]) == len(cases)
    assert verdicts(ray_doc) == verdicts(local_doc)
    for case in cases:
        expected = tomllib.loads((case / "expected.toml").read_text())
        sub = next(s for s in ray_doc["submissions"] if s["student"] == case.name.replace("_", "-"))
        assert sub["score"] == pytest.approx(expected["score"]), case.name
        assert sorted(c["id"] for c in sub["checks"] if c["status"] not in ("passed", "skipped")) == \
            sorted(expected["failing"]), case.name
    nodes = Counter(s["node"] for s in ray_doc["submissions"])
    assert len(nodes) == 2, nodes  # both nodes graded, each named apart (one host, two Ray node ids)
    assert all("/" in node for node in nodes)
    assert gradebook_state(tmp_path / "ray.db") == gradebook_state(tmp_path / "local.db")
    consistent(tmp_path / "ray.db")
    con = sqlite3.connect(tmp_path / "ray.db")
    try:  # kit report's view: which machine graded each submission
        assert dict(Counter(n for (n,) in con.execute("SELECT node FROM kit_attempt"))) == dict(nodes)
    finally:
        con.close()


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (pid namespaces included: /proc shows them all from here)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_node_killed_mid_run_costs_nothing_and_leaves_nothing(cluster, tmp_path):
    doomed = cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
    cluster.wait_for_nodes()
    raylet = doomed.all_processes["raylet"][0].process.pid
    course = make_course(tmp_path / "course")
    sleepers = {f"a-sleeper{i}": SLEEPER for i in range(8)}  # first in line: every actor starts with one
    others = {case.name.replace("_", "-"): (case / FILE).read_text() for case in ordinary_cases()[:6]}
    hand_in(course, {**sleepers, **others})
    expected = {**{s: 21.0 for s in sleepers},  # hw1's full marks without a GPU
                **{case.name.replace("_", "-"): tomllib.loads((case / "expected.toml").read_text())["score"]
                   for case in ordinary_cases()[:6]}}

    killed: dict = {}

    def kill_when_grading() -> None:
        """Kill the node while its actor's child is importing a sleeper: a fork server and a child are up."""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            tree = descendants(raylet)
            names = sorted(comm(pid) for pid in tree)
            if "sleep" in names:
                killed["tree"], killed["names"] = tree, names
                cluster.remove_node(doomed, allow_graceful=False)
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_when_grading)
    watcher.start()
    spec = load_assignment(HW1)
    subs, _ = find_submissions(course / "submitted", "hw1")
    outcomes: Counter = Counter()
    grader = RayGrader(cluster.address, require_sandbox=SANDBOX)
    try:
        with Gradebook(db_url(course)) as book:
            run = grade_class(spec, subs, book, grader, on_result=lambda o: outcomes.update([o.job.student]))
    finally:
        grader.close()
        watcher.join()

    assert "tree" in killed, "the node was never seen grading"
    # nothing of the dead node is left: its actor, fork server (bwrap and zygote) and the child it forked
    deadline = time.monotonic() + 20
    while any(running(pid) for pid in killed["tree"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [f"{pid} {comm(pid)}" for pid in killed["tree"] if running(pid)]
    assert not left, left
    assert len(killed["tree"]) >= 4, killed  # the actor, bwrap, the zygote, its child (at least)
    print(f"killed a node grading in {len(killed['tree'])} processes: {killed['names']}")

    # every submission graded once, right, by the nodes that lived
    assert not run.errors, run.errors
    assert outcomes == Counter(list(expected)), outcomes  # each exactly once
    assert {s: r.score for s, r in run.reports.items()} == pytest.approx(expected)
    state = gradebook_state(course / "gradebook.db")
    assert {s: v["score"] for s, v in state.items()} == pytest.approx(expected)
    consistent(course / "gradebook.db")


def test_a_node_without_bubblewrap_refuses_the_run(cluster, tmp_path):
    if not SANDBOX:
        pytest.skip("no working bubblewrap here: every node lacks it")
    no_bwrap = tmp_path / "bin"
    no_bwrap.mkdir()
    os.symlink(sys.executable, no_bwrap / "python")
    saved = os.environ["PATH"]
    os.environ["PATH"] = str(no_bwrap)  # the new node's raylet, and so its workers, find no bwrap
    try:
        bare = cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
    finally:
        os.environ["PATH"] = saved
    cluster.wait_for_nodes()
    try:
        course = make_course(tmp_path / "course")
        hand_in(course, {"ann": SOLUTION.read_text()})
        run = kit("grade", "hw1", "--ray", cluster.address, cwd=course)
        assert run.returncode == 2, run.stdout + run.stderr
        assert "bubblewrap" in run.stderr and "--unsafe-no-sandbox" in run.stderr, run.stderr
        assert not (course / "gradebook.db").exists()
    finally:
        cluster.remove_node(bare)
