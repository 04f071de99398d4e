"""Grading a class on a Ray cluster: the worker code of local grading, one actor per CPU or GPU slot.

`RayGrader` is a `Grader` (kit.grader.batch): `kit grade --ray ADDRESS` hands it to `grade_class` in
place of the local `WorkerPool`, so the plan, the skip-unchanged rule, resuming and the gradebook
(written by this process only, one transaction per submission) are those of local grading.

No filesystem is shared. The suite travels once, through Ray's object store, to each actor, which
writes it to its node's disk; each submission's files travel with its task and are deleted once
graded; the report comes back. Each actor is a grading worker of kit.grader.pool: `init_worker`
(signals, dying with its raylet, its own sandboxed fork server started at once) and, per
submission, `grade_in_worker`. Nothing outlives an actor: its fork server runs in bubblewrap with
--die-with-parent, in a pid namespace of its own, so when the actor dies, however it dies, the
kernel ends the fork server and every child it forked.

Before an actor starts, every node that could hold one is probed with the sandbox probe of local
grading: a node without a working bubblewrap refuses the run (unless --unsafe-no-sandbox), and so
does one whose kit or torch differs from this machine's, since its verdicts could differ too. When
the assignment has GPU checks and the cluster has GPUs, each actor holds one GPU (and only GPU
nodes grade, so that every submission runs the same checks); otherwise each holds one CPU.

An actor that dies (its node died, was removed, ran out of memory) costs the submission it was
grading one attempt (kit.grader.pool.Attempts, as a local worker's death does); the submission is
graded again by another actor, and its result is taken from that one only, so none is lost and
none is written twice. A replacement actor is started, and runs wherever the cluster has room.
"""
from __future__ import annotations

import atexit
import importlib.metadata
import os
import re
import shutil
import socket
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .course import Assignment, SetupError
from .files import entries, read_regular
from .pool import MAX_ATTEMPTS, Attempts, Job, Outcome, WorkerSetup, grade_in_worker, init_worker
from .report import Report

INSTALL = "pip install 'kit[ray]'"
MAX_FOLDER_BYTES = 256 << 20  # a submission folder sent to a node: `kit collect` keeps them under 20 MiB
READY_TIMEOUT = 600.0  # seconds without any actor able to grade before the rest is given up
GPU_MARK = re.compile(r"\bmark\.gpu\b")
ACTOR_DIR = "kit-ray-"  # each actor's folder on its node: kit-ray-<pid>-<random>


def import_ray():
    """Ray, or a SetupError that says how to install it (kit's default install leaves it out)."""
    try:
        import ray
    except ImportError:
        raise SetupError(f"--ray needs Ray, which is not installed here: {INSTALL}") from None
    return ray


# -- what travels ---------------------------------------------------------------------------------------

@dataclass
class Folder:
    """A folder as data, to be written on another machine: its regular files and its links."""

    files: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: Path, limit: int = MAX_FOLDER_BYTES) -> Folder:
        """What `folder` holds, as kit.grader.files sees it (no special file is opened); OSError past `limit`."""
        out, total = cls(), 0
        for rel, st in entries(folder):
            if os.path.islink(folder / rel):
                out.links[rel] = os.readlink(folder / rel)
                continue
            total += st.st_size
            if total > limit:
                raise OSError(f"the folder holds more than {limit >> 20} MiB, too much to send to a Ray node")
            out.files[rel] = read_regular(folder / rel)
        return out

    def write(self, dest: Path) -> None:
        """Recreate the folder at `dest` (which must not exist), readable by the sandbox's user."""
        dest.mkdir(parents=True)
        root = dest.resolve()
        for rel, data in self.files.items():
            path = (dest / rel).resolve()
            if not path.is_relative_to(root):
                raise ValueError(f"a path that leaves its folder: {rel!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        for rel, target in self.links.items():
            path = dest / rel
            if not path.parent.resolve().is_relative_to(root):
                raise ValueError(f"a path that leaves its folder: {rel!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target)


def has_gpu_checks(assignment: Assignment) -> bool:
    """Whether any check of the suite is marked `@pytest.mark.gpu` (read from its source, torch not imported)."""
    return any(GPU_MARK.search(f.read_text(errors="replace")) for f in assignment.suite_files(hidden=True))


# -- on a node ------------------------------------------------------------------------------------------

def sweep(parent: Path) -> None:
    """Remove the folders of actors that died without cleaning up (killed, or their raylet went away):
    they hold a suite and, maybe, the submission that was being graded."""
    for old in parent.glob(f"{ACTOR_DIR}*-*"):
        pid = old.name.removeprefix(ACTOR_DIR).split("-")[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass  # alive, another user's


def node_label() -> str:
    """This node as `--json` and the gradebook name it: the host, and Ray's node id (hosts may repeat)."""
    import ray

    return f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"


def versions() -> dict[str, str]:
    """What must match between the driver and every node for the verdicts to match: kit's version, and
    torch's without its build label (a GPU node's 2.13.0+cu126 grades as a CPU machine's 2.13.0+cpu)."""
    return {"kit": importlib.metadata.version("kit"), "torch": importlib.metadata.version("torch").split("+")[0]}


def survey_node(require_sandbox: bool) -> dict:
    """Run on each node before the actors start: the sandbox probe of local grading, and the versions."""
    from .launch import Limits
    from .sandbox import make_launcher

    facts = {"node": node_label(), "versions": versions(), "error": None, "sandbox": "", "warning": None}
    try:
        launcher = make_launcher(Limits(), require=require_sandbox)
        facts["sandbox"] = launcher.description if launcher.sandboxed else launcher.warning
        facts["warning"] = launcher.warning
    except SetupError as exc:
        facts["error"] = str(exc)
    return facts


class GradingActor:
    """One grading slot on one node: a worker of the local pool, its submissions handed over by Ray."""

    def __init__(self, assignment: str, suite: Folder, require_sandbox: bool, fork_server: bool) -> None:
        sweep(Path(tempfile.gettempdir()))
        self.root = Path(tempfile.mkdtemp(prefix=f"{ACTOR_DIR}{os.getpid()}-"))
        atexit.register(shutil.rmtree, self.root, ignore_errors=True)  # a graceful end (the driver's, at the end)
        os.chmod(self.root, 0o755)  # the sandbox's user reads the suite's helpers and the submission here
        self.suite_dir = self.root / "suites" / assignment
        suite.write(self.suite_dir)
        self.require_sandbox = require_sandbox
        self.node = node_label()
        init_worker(os.getppid(), WorkerSetup(str(self.suite_dir), require_sandbox, fork_server))

    def ready(self) -> str:
        return self.node

    def grade(self, student: str, submission: Folder) -> tuple[Report, str]:
        """Grade one submission, written under the same names as in the course (`<student>/<assignment>/`)."""
        folder = self.root / "submitted" / student / self.suite_dir.name
        try:
            submission.write(folder)
            report, _ = grade_in_worker(str(self.suite_dir), str(folder), self.require_sandbox)
        finally:
            shutil.rmtree(folder.parent, ignore_errors=True)
        return report, self.node



# -- the driver -----------------------------------------------------------------------------------------

@dataclass(eq=False)
class Slot:
    """One actor, as the driver sees it."""

    actor: object
    node: str = ""
    job: Job | None = None
    since: float = 0.0


class RayGrader:
    """Grades on the Ray cluster at `address` (as `ray.init` takes it: `auto`, `HOST:PORT`, `ray://HOST:PORT`)."""

    def __init__(self, address: str, require_sandbox: bool, *, jobs: int | None = None, fork_server: bool = True,
                 max_attempts: int = MAX_ATTEMPTS) -> None:
        self.ray = import_ray()
        self.address = address
        self.require_sandbox = require_sandbox
        self.jobs = jobs
        self.fork_server = fork_server
        self.max_attempts = max_attempts
        self.sandbox = ""  # what the nodes run student code in, in words
        self.warning: str | None = None  # what to show when some node runs it without a sandbox
        self.connected = False

    def connect(self) -> None:
        """Join the cluster and check every node that could grade (SetupError when one cannot)."""
        if self.connected:
            return
        try:
            self.ray.init(address=self.address, log_to_driver=False, logging_level="WARNING")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise SetupError(f"cannot connect to the Ray cluster at {self.address}: {exc}") from None
        self.connected = True
        self.survey()

    def survey(self) -> list[dict]:
        """Probe each live node with CPUs or GPUs; refuse the run when one cannot grade as this machine would."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self.ray
        nodes = [n for n in ray.nodes() if n["Alive"] and (n["Resources"].get("CPU") or n["Resources"].get("GPU"))]
        if not nodes:
            raise SetupError(f"the Ray cluster at {self.address} has no node with a CPU to grade on")
        task = ray.remote(num_cpus=0, max_retries=0)(survey_node)
        refs = {n["NodeID"]: task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(self.require_sandbox) for n in nodes}
        mine, facts, problems = versions(), [], []
        for node_id, ref in refs.items():
            try:
                found = ray.get(ref, timeout=READY_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - kit missing on the node, a node that died: said below
                problems.append(f"node {node_id[:8]}: {type(exc).__name__}: {str(exc).splitlines()[-1]}")
                continue
            facts.append(found)
            if found["error"]:
                problems.append(f"node {found['node']}: {found['error']}")
            elif found["versions"] != mine:
                problems.append(f"node {found['node']} has {found['versions']}, this machine {mine}: install the "
                                "same versions everywhere")
        if problems:
            raise SetupError("the Ray cluster cannot grade: " + "; ".join(problems))
        self.sandbox = "; ".join(sorted({f["sandbox"] for f in facts}))
        warnings = sorted({f["warning"] for f in facts if f["warning"]})
        self.warning = "; ".join(warnings) if warnings else None
        return facts

    def grade(self, assignment: Assignment, jobs: list[Job]) -> Iterator[Outcome]:
        """Yield each submission's outcome as soon as it is known (in completion order)."""
        self.connect()
        ray = self.ray
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if has_gpu_checks(assignment) else 0
        slots = gpus or int(resources.get("CPU", 0))
        wanted = max(1, min(slots, len(jobs), self.jobs or slots))
        actor_class = ray.remote(num_cpus=1, num_gpus=1 if gpus else 0, max_restarts=0,
                                 scheduling_strategy="SPREAD")(GradingActor)
        suite = ray.put(Folder.read(assignment.suite_dir))
        queue, attempts = deque(jobs), Attempts(self.max_attempts)
        starting: dict = {}  # ready() ref -> Slot
        running: dict = {}  # grade() ref -> Slot
        idle: list[Slot] = []
        every: list[Slot] = []
        replacements = wanted * self.max_attempts
        last_error = ""

        def start() -> None:
            slot = Slot(actor_class.remote(assignment.name, suite, self.require_sandbox, self.fork_server))
            every.append(slot)
            starting[slot.actor.ready.remote()] = slot

        for _ in range(wanted):
            start()
        waiting_since = time.monotonic()
        try:
            while queue or running:
                while idle and queue:
                    slot, job = idle.pop(), queue.popleft()
                    try:
                        folder = Folder.read(job.path)
                    except OSError as exc:
                        idle.append(slot)
                        yield Outcome(job, None, f"cannot send the submission: {exc}")
                        continue
                    slot.job, slot.since = job, time.monotonic()
                    running[slot.actor.grade.remote(job.student, folder)] = slot
                if not running and not starting and queue:
                    if replacements <= 0:
                        break
                    replacements -= 1
                    start()
                done, _ = ray.wait([*running, *starting], num_returns=1, timeout=1.0)
                now = time.monotonic()
                if running or idle:
                    waiting_since = now
                elif now - waiting_since > READY_TIMEOUT:
                    break
                for ref in done:
                    if ref in starting:
                        slot = starting.pop(ref)
                        try:
                            slot.node = ray.get(ref)
                            idle.append(slot)
                        except ray.exceptions.RayError as exc:  # it could not start: another one may
                            last_error = _cause(exc)
                        continue
                    slot = running.pop(ref)
                    job, seconds = slot.job, now - slot.since
                    try:
                        report, node = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:  # the task raised (NotGraded, the suite's error)
                        idle.append(slot)
                        cause = exc.cause if isinstance(exc.cause, Exception) else exc
                        if (outcome := attempts.failed(job, cause, seconds)) is None:
                            queue.append(job)
                        else:
                            yield outcome
                        continue
                    except ray.exceptions.RayError as exc:  # the actor or its node died: try elsewhere
                        last_error = _cause(exc)
                        ray.kill(slot.actor)  # if it is only unreachable, it must not go on grading
                        if (outcome := attempts.lost(job, seconds)) is None:
                            queue.appendleft(job)
                        else:
                            yield outcome
                        if replacements > 0:
                            replacements -= 1
                            start()
                        continue
                    idle.append(slot)
                    yield Outcome(job, report, None, seconds, node)
            why = f"no Ray actor could grade it ({last_error or 'none became ready'})"
            for job in queue:
                yield Outcome(job, None, why)
        finally:
            # idle actors end as Ray actors should (their folders removed, within a few seconds); the rest is killed
            ending = [slot.actor.__ray_terminate__.remote() for slot in idle]
            if ending:
                ray.wait(ending, num_returns=len(ending), timeout=10)
            for slot in every:
                ray.kill(slot.actor)

    def close(self) -> None:
        if self.connected:
            self.ray.shutdown()
            self.connected = False


def _cause(exc: Exception) -> str:
    """One line on why an actor is gone."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:500]
