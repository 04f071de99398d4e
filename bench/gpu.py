"""GPU verification run (issue 13): do `kit check` and `kit grade` work on a CUDA machine, and how fast?

    python bench/gpu.py [--out DIR] [--jobs N] [--only hw1,hw3] [--skip-grade]

On a machine with CUDA, in at most about five minutes on one GPU, it

1. runs `kit check hwN --hidden --json` on every solution and every `alt_correct` fixture: full marks,
   with every GPU check and every device check really run on the GPU (a skipped one is a failure);
2. runs every GPU-only mistake (a fixture whose expected.toml has a `[gpu]` table): exactly the score
   and the failing checks `[gpu]` records, that is, it loses its GPU and device checks and nothing else;
3. runs `kit grade hwN --json` on a class made of tests/submissions/hwN (every fixture but those with
   their own [limits], the solution twice, the stub), with the fork server and with --no-fork-server:
   identical verdicts, and the GPU checks of the solution's copies passed in forked children;
4. measures each `kit check` (wall time, the time of every check), `kit grade`'s throughput, and
   the peak GPU memory of every process (nvidia-smi, sampled every 0.2 s), children and graders apart;
5. writes gpu.json and gpu.md into --out (default: a new folder in /tmp) and prints the markdown.

Exit status: 0 all verified; 1 something did not verify (each listed under "problems"); 3 no CUDA
device here: one line, nothing verified. Run it with the interpreter of the environment kit is
installed in, from anywhere (it finds the repository from its own path).

`--cpu-rehearsal` runs every step on a machine without CUDA against the CPU expectations (GPU
checks skipped, GPU-only mistakes scored as expected.toml's top level says): it tests this script,
and verifies nothing about GPUs.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KIT = str(Path(sys.executable).with_name("kit"))
ASSIGNMENTS = [f"hw{i}" for i in range(1, 7)]
NO_CUDA = 3  # the exit status when there is nothing to verify here (not 0, not 1)


def cuda_facts() -> dict:
    """The GPU, torch and CUDA (`cuda` False without it), asked in a subprocess: this process stays CUDA-free."""
    probe = ("import json, torch\n"
             "ok = torch.cuda.is_available()\n"
             "p = torch.cuda.get_device_properties(0) if ok else None\n"
             "print(json.dumps({'cuda': ok, 'torch': torch.__version__, 'cuda_version': torch.version.cuda,\n"
             "  'gpu': p.name if p else None, 'gpu_memory_gib': round(p.total_memory / 2**30, 1) if p else None,\n"
             "  'devices': torch.cuda.device_count() if ok else 0, 'cudnn': torch.backends.cudnn.version() if ok\n"
             "  else None}))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env={**os.environ, "PYTORCH_NVML_BASED_CUDA_CHECK": "1"})
    return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else {"cuda": False}


def driver_version() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown (no nvidia-smi)"


class GpuMemory:
    """Peak GPU memory of every process, sampled with nvidia-smi; a kit child is told apart by its command line."""

    def __init__(self) -> None:
        self.peak: dict[int, tuple[str, int]] = {}  # pid -> (kind, MiB)
        self.available = shutil.which("nvidia-smi") is not None
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> GpuMemory:
        if self.available:
            self.proc = subprocess.Popen(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                                          "--format=csv,noheader,nounits", "-lms", "200"],
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                pid, mib = (int(v) for v in line.split(","))
            except ValueError:
                continue
            kind = self.peak.get(pid, (None, 0))[0] or kind_of(pid)
            self.peak[pid] = (kind, max(mib, self.peak.get(pid, ("", 0))[1]))

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()

    def summary(self) -> dict:
        out: dict = {"measured": self.available}
        for kind in ("child", "grader", "unknown"):
            values = [mib for k, mib in self.peak.values() if k == kind]
            out[kind] = {"processes": len(values), "max_mib": max(values, default=0),
                         "median_mib": statistics.median(values) if values else 0}
        return out


def kind_of(pid: int) -> str:
    """"child" for a process running kit's child package (a fork server's children included), "grader" for
    another, "unknown" for one this machine's /proc does not show (nvidia-smi names host pids in a container)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "unknown"
    return "child" if "child.__main__" in cmdline else "grader"


def kit(*args: str, cwd: Path, env: dict) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    out = subprocess.run([KIT, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    return out, time.perf_counter() - start


def check(hw: str, folder: Path, env: dict) -> tuple[dict | None, float, str]:
    out, seconds = kit("check", hw, "--hidden", "--json", "--path", str(folder), cwd=REPO, env=env)
    try:
        return json.loads(out.stdout), seconds, ""
    except ValueError:
        return None, seconds, f"exit {out.returncode}: {(out.stderr or out.stdout)[-500:]}"


class Run:
    """Everything measured and every problem found."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.checks: list[dict] = []
        self.grades: list[dict] = []

    def problem(self, text: str) -> None:
        print(f"PROBLEM {text}", file=sys.stderr, flush=True)
        self.problems.append(text)


def verify_full_marks(run: Run, hw: str, folder: Path, env: dict, gpu: bool) -> None:
    doc, seconds, error = check(hw, folder, env)
    name = str(folder.relative_to(REPO))
    if doc is None:
        run.problem(f"{name}: no report ({error})")
        return
    run.checks.append({"case": name, "seconds": round(seconds, 2), "score": doc["score"], "max": doc["max_score"],
                       "checks": {c["id"]: c["duration"] for c in doc["checks"]}})
    for c in doc["checks"]:
        if c["status"] != "passed" and (gpu or c["reason"] not in ("no_cuda", "not_emulated")):
            run.problem(f"{name}: {c['id']} {c['status']} ({c['reason'] or c['message'][:300]})")
    if not any(c["gpu"] for c in doc["checks"]):
        run.problem(f"{name}: no GPU check in the report")


def verify_gpu_mistake(run: Run, hw: str, folder: Path, expected: dict, env: dict, gpu: bool) -> None:
    doc, seconds, error = check(hw, folder, env)
    name = str(folder.relative_to(REPO))
    if doc is None:
        run.problem(f"{name}: no report ({error})")
        return
    failing = sorted(c["id"] for c in doc["checks"] if c["status"] not in ("passed", "skipped"))
    skipped = sorted(c["id"] for c in doc["checks"] if c["status"] == "skipped")
    run.checks.append({"case": name, "seconds": round(seconds, 2), "score": doc["score"], "max": doc["max_score"],
                       "failing": failing, "checks": {c["id"]: c["duration"] for c in doc["checks"]}})
    want = expected["gpu"] if gpu else expected
    if failing != sorted(want["failing"]) or abs(doc["score"] - want["score"]) > 1e-9 or (gpu and skipped):
        details = "; ".join(f"{c['id']}: {c['message'][:200]}" for c in doc["checks"] if c["id"] in failing)
        run.problem(f"{name}: score {doc['score']} failing {failing} skipped {skipped}, expected score "
                    f"{want['score']} failing {sorted(want['failing'])} ({details})")


def make_class(course: Path, hw: str) -> dict[str, Path]:
    """A course folder whose submitted/ holds tests/submissions/hwN (but cases with their own limits),
    two copies of the solution and the stub; student -> source folder."""
    course.mkdir(parents=True)
    (course / "kit.toml").write_text(f'[course]\nname = "gpu check"\nsuites = "{REPO / "grader" / "suites"}"\n')
    members = {"solution-a": REPO / "solutions" / hw, "solution-b": REPO / "solutions" / hw,
               "stub": REPO / "assignments" / hw}
    for expected in sorted((REPO / "tests" / "submissions" / hw).glob("*/expected.toml")):
        if "limits" not in tomllib.loads(expected.read_text()):
            members[expected.parent.name.replace("_", "-")] = expected.parent
    for student, source in members.items():
        dest = course / "submitted" / student / hw
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns("expected.toml", "README.md", "__pycache__"))
    return members


def verify_grade(run: Run, hw: str, jobs: int, env: dict, work: Path, gpu: bool, sandboxed: bool) -> None:
    course = work / f"class-{hw}"
    members = make_class(course, hw)
    docs = {}
    unsafe = [] if sandboxed else ["--unsafe-no-sandbox"]  # our own fixtures; the report says there was none
    for mode, extra in (("fork server", unsafe), ("no fork server", [*unsafe, "--no-fork-server"])):
        db = work / f"gradebook-{hw}-{mode.replace(' ', '-')}.db"
        out, seconds = kit("grade", hw, "--json", "--force", "-j", str(jobs), "--db", str(db), *extra,
                           cwd=course, env=env)
        try:
            doc = json.loads(out.stdout)
        except ValueError:
            run.problem(f"kit grade {hw} ({mode}): no JSON (exit {out.returncode}: {out.stderr[-500:]})")
            return
        docs[mode] = doc
        n = len(doc["submissions"])
        run.grades.append({"assignment": hw, "mode": mode, "submissions": n, "seconds": round(seconds, 2),
                           "per_second": round(n / seconds, 2), "exit": out.returncode})
        if doc["not_graded"] or n != len(members):
            run.problem(f"kit grade {hw} ({mode}): {n} of {len(members)} graded; not graded: {doc['not_graded']}")
        for sub in doc["submissions"]:
            if gpu and sub["student"].startswith("solution") and not all(
                    c["status"] == "passed" for c in sub["checks"] if c["gpu"] or c["id"].startswith("device")):
                run.problem(f"kit grade {hw} ({mode}): {sub['student']}'s GPU or device checks did not pass: "
                            + "; ".join(f"{c['id']} {c['status']} {c['message'][:200]}" for c in sub["checks"]
                                        if c["status"] != "passed"))
    if len(docs) == 2:
        def verdicts(doc: dict) -> dict:
            return {s["student"]: (s["score"], [(c["id"], c["status"], c["points"]) for c in s["checks"]])
                    for s in doc["submissions"]}

        a, b = verdicts(docs["fork server"]), verdicts(docs["no fork server"])
        for student in sorted(set(a) | set(b)):
            if a.get(student) != b.get(student):
                run.problem(f"kit grade {hw}: {student} graded differently with and without the fork server: "
                            f"{a.get(student)} vs {b.get(student)}")


def markdown(facts: dict, run: Run, memory: dict) -> str:
    lines = [f"# kit on a GPU ({facts['date']})", "",
             f"{facts['gpu']} ({facts['gpu_memory_gib']} GiB), driver {facts['driver']}, torch {facts['torch']}, "
             f"CUDA {facts['cuda_version']}, cuDNN {facts['cudnn']}, Python {facts['python']}, "
             f"{facts['cpus']} CPUs, sandbox: {facts['sandbox']}", "",
             f"**{'verified' if not run.problems else f'{len(run.problems)} problem(s)'}**", ""]
    if run.problems:
        lines += [f"- {p}" for p in run.problems] + [""]
    lines += ["| kit check --hidden | wall time | score | slowest check |", "|---|---|---|---|"]
    for c in run.checks:
        slow = max(c["checks"].items(), key=lambda kv: kv[1], default=("", 0))
        lines.append(f"| {c['case']} | {c['seconds']:.2f} s | {c['score']:g} / {c['max']:g} | "
                     f"{slow[0]} ({slow[1]:.2f} s) |")
    if run.grades:
        lines += ["", "| kit grade | submissions | wall time | submissions/s |", "|---|---|---|---|"]
        lines += [f"| {g['assignment']} ({g['mode']}) | {g['submissions']} | {g['seconds']:.1f} s | {g['per_second']} |"
                  for g in run.grades]
    if memory.get("measured"):
        lines += ["", "| peak GPU memory | processes | max | median |", "|---|---|---|---|"]
        lines += [f"| {kind} | {memory[kind]['processes']} | {memory[kind]['max_mib']} MiB | "
                  f"{memory[kind]['median_mib']} MiB |" for kind in ("child", "grader", "unknown")
                  if memory[kind]["processes"]]
    else:
        lines += ["", "GPU memory: not measured (no nvidia-smi)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="folder for gpu.json and gpu.md (default: a new one in /tmp)")
    parser.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1),
                        help="kit grade -j (default: 8, or the CPUs if fewer)")
    parser.add_argument("--only", help="assignments, comma-separated (default: hw1..hw6)")
    parser.add_argument("--skip-grade", action="store_true", help="leave out the kit grade runs")
    parser.add_argument("--cpu-rehearsal", action="store_true",
                        help="without CUDA: run every step against the CPU expectations (tests this script)")
    args = parser.parse_args()
    facts = cuda_facts()
    gpu = bool(facts.get("cuda"))
    if not gpu and not args.cpu_rehearsal:
        print("bench/gpu.py: no CUDA device here; nothing verified", flush=True)
        return NO_CUDA
    if not gpu:
        facts.update(gpu="none (CPU rehearsal: nothing about GPUs verified)", gpu_memory_gib=0)
    from kit.grader.sandbox import probe

    found = probe()
    facts.update(date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"), driver=driver_version(),
                 python=platform.python_version(), cpus=os.cpu_count(),
                 sandbox=found.mode.description if found.ok else f"none ({found.reason})",
                 device_nodes=sorted(str(p) for p in Path("/dev").glob("nvidia*")))
    hws = args.only.split(",") if args.only else ASSIGNMENTS
    out = args.out or Path(tempfile.mkdtemp(prefix="kit-gpu-"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kit-gpu-work-"))
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
    run = Run()
    started = time.perf_counter()
    with GpuMemory() as memory:
        for hw in hws:
            print(f"[gpu] {hw}: kit check", file=sys.stderr, flush=True)
            verify_full_marks(run, hw, REPO / "solutions" / hw, env, gpu)
            for expected in sorted((REPO / "tests" / "submissions" / hw).glob("*/expected.toml")):
                data = tomllib.loads(expected.read_text())
                if expected.parent.name == "alt_correct":
                    verify_full_marks(run, hw, expected.parent, env, gpu)
                elif "gpu" in data:
                    verify_gpu_mistake(run, hw, expected.parent, data, env, gpu)
            if not args.skip_grade:
                print(f"[gpu] {hw}: kit grade", file=sys.stderr, flush=True)
                verify_grade(run, hw, args.jobs, env, work, gpu, found.ok)
    facts["seconds"] = round(time.perf_counter() - started, 1)
    report = {"facts": facts, "problems": run.problems, "checks": run.checks, "grades": run.grades,
              "gpu_memory": memory.summary(), "gpu_memory_by_pid": {str(k): v for k, v in memory.peak.items()}}
    (out / "gpu.json").write_text(json.dumps(report, indent=2))
    text = markdown(facts, run, report["gpu_memory"])
    (out / "gpu.md").write_text(text)
    print(text)
    print(f"[gpu] {facts['seconds']} s; results in {out}", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    return 1 if run.problems else 0


if __name__ == "__main__":
    sys.exit(main())
