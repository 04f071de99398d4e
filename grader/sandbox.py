"""The sandbox around student code: bubblewrap when it works, resource limits when it does not.

`make_launcher` picks how the child process that runs student code is started.
With bubblewrap (`bwrap`) the child gets a filesystem of its own, built from nothing:
the system's `/usr`, the Python it runs on, kit's `child` package, the suite's `remote.py` and the
student's folder, all read-only, plus one private writable scratch folder. The course
folder (hidden suites, solutions, gradebook, other students' work), home folders and
`/tmp` simply do not exist in there. The child has no network (a fresh network
namespace), sees only its own processes (a fresh pid namespace: everything it starts
dies with it), may start only a few processes, and runs as `nobody` when the grader
runs as root. Without bubblewrap the child still gets its resource limits and the
caller shows `launcher.warning`; see docs/sandbox.md for what each guarantees.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import platform
import shutil
import signal
import stat
import struct
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .course import SetupError
from .files import user_cache
from .launch import CHILD_PACKAGE, ChildCommand, Limits, PlainLauncher, StartedChild, child_env, gpu_nodes

NOBODY = 65534  # the uid (and gid) a root grader's child runs as
PROBE_TIMEOUT = 30.0
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: `sudo apt-get install -y bubblewrap`; "
                "Fedora: `sudo dnf install bubblewrap`)")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group", "nsswitch.conf",
             "alternatives")

FORK_HELPERS = 2  # a forked child's keeper and init (kit.grader.child.zygote) count against its process limit

# No child needs the kernel's keyrings, and with them one could leave a key for the next, or
# (under a non-root grader, whose uid it shares) write into the grader's own user keyring. A
# seccomp filter refuses add_key, request_key and keyctl (EPERM), and kills a process that
# makes system calls of another architecture (i386 or x32 on x86_64) or of unknown number
# ranges. Per machine: the audit architecture and the three calls' numbers.
KEY_SYSCALLS = {"x86_64": (0xC000003E, (248, 249, 250)), "aarch64": (0xC00000B7, (217, 218, 219))}


def seccomp_filter(machine: str = platform.machine()) -> bytes:
    """The classic BPF program (struct sock_filter[]) described above; empty where the numbers are unknown."""
    if machine not in KEY_SYSCALLS:
        return b""
    arch, (add_key, request_key, keyctl) = KEY_SYSCALLS[machine]
    load, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JGE|K, BPF_RET|K
    kill, allow, eperm = 0x80000000, 0x7FFF0000, 0x00050001  # SECCOMP_RET_KILL_PROCESS, _ALLOW, _ERRNO|EPERM
    program = [(load, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, kill),  # seccomp_data.arch
               (load, 0, 0, 0), (jge, 4, 0, 0x40000000),  # seccomp_data.nr; x32 calls have bit 30 set
               (jeq, 3, 0, add_key), (jeq, 2, 0, request_key), (jeq, 1, 0, keyctl),
               (ret, 0, 0, allow), (ret, 0, 0, eperm)]
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)


# Runs first inside the sandbox, then becomes the child (exec): drops root, takes a user
# namespace of its own so the process limit counts this sandbox's processes only, sets that
# limit (unless told -1), installs the seccomp filter (hex; bwrap has set no_new_privs), and
# starts the real command. Plain `python -c` so it needs nothing mounted.
TRAMPOLINE = """\
import ctypes, os, resource, sys
nproc, nproc_own_ns, uid = (int(a) for a in sys.argv[1:4])
program = bytes.fromhex(sys.argv[4])
libc = ctypes.CDLL(None, use_errno=True)
if uid >= 0:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if libc.unshare(0x10000000) == 0:
        nproc = nproc_own_ns
if nproc >= 0:
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
if program:
    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
    if libc.prctl(22, 2, ctypes.byref(Program(len(program) // 8, program)), 0, 0) != 0:
        sys.exit("kit: cannot install the seccomp filter: " + os.strerror(ctypes.get_errno()))
os.execv(sys.argv[5], sys.argv[5:])
"""


class SandboxUnavailable(SetupError):
    """A sandbox was required and bubblewrap cannot provide one here (a setup error)."""


@dataclass(frozen=True)
class Mode:
    """One way of running bwrap; the probe keeps the first that works on this machine."""

    name: str
    flags: tuple[str, ...]
    drop_uid: int | None = None  # uid the trampoline switches to inside (root graders)
    own_userns: bool = False  # bwrap gives each sandbox a user namespace: a per-sandbox process count

    @property
    def description(self) -> str:
        return {"user": "bubblewrap (user namespace)",
                "user-setuid": "bubblewrap (setuid, no user namespace)",
                "root-drop": f"bubblewrap (grader is root; student code runs as uid {NOBODY})",
                "root": "bubblewrap (grader is root; student code runs as root without capabilities)"}[self.name]


NAMESPACES = ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try")


def candidate_modes(euid: int, features: frozenset[str]) -> list[Mode]:
    if euid == 0:  # bwrap keeps every capability of a root caller unless told to drop them
        return [Mode("root-drop", NAMESPACES + ("--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add",
                                                "CAP_SETGID"), NOBODY),
                Mode("root", NAMESPACES + ("--cap-drop", "ALL"))]
    userns = ("--unshare-user",) + (("--disable-userns",) if "--disable-userns" in features else ())
    return [Mode("user", NAMESPACES + userns, own_userns=True), Mode("user-setuid", NAMESPACES)]


@dataclass(frozen=True)
class Probe:
    """What `probe` found: a working mode, or why there is none."""

    bwrap: str | None
    mode: Mode | None
    features: frozenset[str] = frozenset()
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.mode is not None


def bwrap_features(bwrap: str) -> frozenset[str]:
    """The options this bwrap knows (old releases lack --size, --perms, --disable-userns)."""
    try:
        out = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    text = out.stdout + out.stderr
    return frozenset(w for w in ("--size", "--perms", "--disable-userns", "--chmod") if w in text)


def probe(bwrap: str | None = None) -> Probe:
    """Find bwrap (`bwrap`, or the one on PATH) and a mode in which it runs this Python; once per bwrap."""
    if not sys.platform.startswith("linux"):
        return Probe(None, None, reason=f"bubblewrap needs Linux, and this is {sys.platform}")
    return _probe(bwrap or shutil.which("bwrap"))


@functools.cache
def _probe(path: str | None) -> Probe:
    if not path or not os.access(path, os.X_OK):
        return Probe(None, None, reason="bubblewrap (bwrap) is not installed")
    features = bwrap_features(path)
    errors = []
    for mode in candidate_modes(os.geteuid(), features):
        launcher = BwrapLauncher(Limits(), Probe(path, mode, features))
        error = launcher.self_test()
        if error is None:
            return Probe(path, mode, features)
        errors.append(f"{mode.name}: {error}")
    return Probe(path, None, features, reason="bubblewrap cannot start a sandbox here (" + "; ".join(errors) + ")")


# What a probe's result depends on besides bwrap's file, this Python and kit's sandbox code: the boot,
# and the kernel's settings for user namespaces (absent files are facts too)
PROBE_FACTS = ("/proc/sys/kernel/random/boot_id", "/proc/sys/user/max_user_namespaces",
               "/proc/sys/kernel/unprivileged_userns_clone", "/proc/sys/kernel/apparmor_restrict_unprivileged_userns")


def remembered_probe() -> Probe:
    """`probe()` for a command that starts one child per run (`kit check`): a working mode is kept in the
    user's cache (sandbox.json) with everything it depends on, and reused while all of that is unchanged,
    which spares each run the self-test (about 50 ms before the child can start). A sandbox that does not
    work is probed again every time, so a fix is seen at once."""
    path = shutil.which("bwrap") if sys.platform.startswith("linux") else None
    facts = probe_facts(path)
    cache = user_cache()
    file = cache / "sandbox.json" if cache and facts else None
    if file is not None:
        try:
            saved = json.loads(file.read_text())
            if saved["facts"] == facts:
                features = frozenset(saved["features"])
                return Probe(path, next(m for m in candidate_modes(os.geteuid(), features) if m.name == saved["mode"]),
                             features)
        except (OSError, ValueError, KeyError, TypeError, StopIteration):
            pass
    found = probe(path)
    if file is not None and found.ok:
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            temporary = file.with_name(f".{file.name}.{os.getpid()}")
            saved = {"facts": facts, "mode": found.mode.name, "features": sorted(found.features)}
            temporary.write_text(json.dumps(saved))
            os.replace(temporary, file)
        except OSError:  # a read-only or full home: probe every time
            pass
    return found


def probe_facts(path: str | None) -> list | None:
    """What a probe of the bwrap at `path` depends on, as JSON data; None when there is no bwrap there."""
    try:
        st = os.stat(path) if path else None
    except OSError:
        st = None
    if st is None:
        return None
    kit = (os.stat(Path(__file__).with_name(name)).st_mtime_ns for name in ("sandbox.py", "launch.py"))
    facts = [path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode, st.st_uid, os.geteuid(),
             os.path.realpath(sys.executable), sys.prefix, *kit]
    for name in PROBE_FACTS:
        try:
            with open(name) as f:
                facts.append(f.read().strip())
        except OSError:
            facts.append(None)
    return facts


def make_launcher(limits: Limits, require: bool, *, bwrap: str | None = None,
                  found: Probe | None = None) -> PlainLauncher:
    """A bubblewrap launcher when bwrap works here; else (require=False) the plain one, with a warning.

    With require=True a missing sandbox raises SandboxUnavailable, whose message says how to fix it.
    `found`: what `probe` found on this machine, when another process already probed it (a grading worker).
    """
    found = found or probe(bwrap)
    if found.ok:
        return BwrapLauncher(limits, found)
    if require:
        raise SandboxUnavailable(f"no sandbox for student code: {found.reason}. To fix: {INSTALL_HINT}, "
                                 "or pass --unsafe-no-sandbox to run the code with resource limits only "
                                 "(only for code you trust).")
    if not sys.platform.startswith("linux"):
        warning = f"no sandbox on {sys.platform} (bubblewrap needs Linux); your code runs with resource limits only"
    elif found.bwrap is None:
        warning = ("no sandbox: bubblewrap not installed; your code runs with resource limits only "
                   "(to fix: `sudo apt-get install bubblewrap` or your system's equivalent)")
    else:
        why = found.reason.removeprefix("bubblewrap cannot start a sandbox here (").removesuffix(")")
        why = why if len(why) <= 100 else why[:97] + "..."
        warning = f"no sandbox: bubblewrap cannot run here ({why}); your code runs with resource limits only"
    return PlainLauncher(limits, warning)


class SandboxedChild(StartedChild):
    """A child inside bwrap: killing it empties its pid namespace before returning."""

    def kill(self) -> None:
        # SIGKILL to the namespace's init (bwrap's pid 1) takes every process in it along; the
        # outer bwrap reaps it and exits, so nothing is left running, orphaned or unreaped.
        for pid in child_pids(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        super().kill()

    def exit_description(self) -> str:
        # bwrap exits with 128+N when the command died of signal N
        code = self.proc.wait(timeout=5)
        if code > 128:
            try:
                return f"was killed by signal {signal.Signals(code - 128).name}"
            except ValueError:
                pass
        return super().exit_description()


def child_pids(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        pass
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def tasks_of(uid: int) -> int:
    """Threads (what RLIMIT_NPROC counts) of `uid` on this machine."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields["Threads"])
        except (OSError, KeyError, ValueError):
            pass
    return count


class Mounts:
    """bwrap arguments for a filesystem built from an empty root, parents made world-searchable."""

    def __init__(self, features: frozenset[str]) -> None:
        self.features = features
        self.args: list[str] = []
        self.made: set[str] = {"/"}
        self.mounted: list[str] = []

    def _under_mount(self, path: str) -> bool:
        return any(path == m or path.startswith(m.rstrip("/") + "/") for m in self.mounted)

    def _parents(self, dest: str) -> None:
        # bwrap would create missing parents mode 0700: unusable once the child is nobody
        parts = Path(dest).parts
        for i in range(2, len(parts)):
            parent = str(Path(*parts[:i]))
            if parent in self.made or self._under_mount(parent):
                continue
            if "--perms" in self.features:
                self.args += ["--perms", "0755"]
            self.args += ["--dir", parent]
            self.made.add(parent)

    def add(self, option: str, dest: str, *before: str, src: str | None = None) -> None:
        self._parents(dest)
        self.args += [*before, option, *([src] if src is not None else []), dest]
        self.mounted.append(dest)
        self.made.add(dest)


def shows_course(student_dir: str, kit_files: list[str]) -> bool:
    """Whether `student_dir` holds a course or kit's own files, so that only the student's file may be shown."""
    inside = [p for p in kit_files if p == student_dir or p.startswith(student_dir.rstrip("/") + "/")]
    return bool(inside) or os.path.exists(os.path.join(student_dir, "kit.toml"))


SYS_FOR_GPU = ("/sys/block", "/sys/bus", "/sys/class", "/sys/dev", "/sys/devices",  # as flatpak does
               "/sys/module/nvidia", "/sys/module/nvidia_uvm")  # the driver's version and parameters


def gpu_binds(dev: str = "/dev") -> list[tuple[str, str]]:
    """(source, path in the sandbox) of every NVIDIA device node under `dev`: what nvidia-container-toolkit
    gives a container for CUDA (/proc/driver/nvidia is in the sandbox's own /proc; libcuda is under /usr)."""
    return [(node, "/dev/" + os.path.relpath(node, dev)) for node in gpu_nodes(dev)]


def python_dirs() -> list[str]:
    """Where this Python and its packages (torch, numpy) live: all the child needs to import."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
            os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        dirs.add(sysconfig.get_path(key))
    for name in ("torch", "numpy"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs.add(os.path.dirname(list(spec.submodule_search_locations)[0]))
    for entry in os.environ.get("LD_LIBRARY_PATH", "").split(":"):
        if os.path.isabs(entry):
            dirs.add(entry)
    out = set()
    for d in dirs:
        if d and os.path.isdir(d):
            out.update({os.path.abspath(d), os.path.realpath(d)})
    out.discard("/")
    # nested ones are covered by their parent; /usr is mounted anyway
    keep = sorted(out, key=len)
    result: list[str] = []
    for d in keep:
        if any(d == p or d.startswith(p + "/") for p in [*result, *SYSTEM_DIRS]):
            continue
        result.append(d)
    return result


def readable_by_others(path: str) -> bool:
    """Whether a uid that owns nothing here can read `path` (a file, or a folder and all in it)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if stat.S_ISREG(st.st_mode):
        return bool(st.st_mode & stat.S_IROTH)
    if not (st.st_mode & stat.S_IROTH and st.st_mode & stat.S_IXOTH):
        return False
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                mode = os.lstat(os.path.join(root, name)).st_mode
            except OSError:
                return False
            if stat.S_ISLNK(mode):
                continue
            need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
            if mode & need != need:
                return False
    return True


def readable_copy(path: str, staging: list[str]) -> str:
    """`path` itself when uid nobody can read it, else a world-readable copy in a folder added to `staging`."""
    if readable_by_others(path):
        return path
    if not staging:
        staging.append(tempfile.mkdtemp(prefix="kit-staging-"))
        os.chmod(staging[0], 0o755)
    dest = os.path.join(staging[0], str(len(os.listdir(staging[0]))))
    if os.path.isdir(path):
        shutil.copytree(path, dest, symlinks=True)  # links stay links: never copy what one points at
    else:
        shutil.copyfile(path, dest)
    for root, _, files in os.walk(dest):
        os.chmod(root, 0o755)
        for name in files:
            if not os.path.islink(os.path.join(root, name)):
                os.chmod(os.path.join(root, name), 0o644)
    return dest


class BwrapLauncher(PlainLauncher):
    """Starts the child inside bubblewrap: no view of the machine beyond what the child needs."""

    sandboxed = True

    def __init__(self, limits: Limits, found: Probe | None = None, *, max_processes: int = 32,
                 scratch_mb: int = 256, extra_ro_binds: tuple[str, ...] = (), gpu_dev: str = "/dev") -> None:
        super().__init__(limits)
        found = found or probe()
        if not found.ok:
            raise SandboxUnavailable(found.reason)
        self.bwrap, self.mode, self.features = found.bwrap, found.mode, found.features
        self.max_processes = max_processes
        self.scratch_mb = scratch_mb
        self.extra_ro_binds = tuple(extra_ro_binds)
        self.gpu_dev = gpu_dev  # where the NVIDIA device nodes are found (another folder in kit's tests)
        self.description = self.mode.description

    # -- the command ---------------------------------------------------------------------------

    def wrap(self, argv: list[str], scratch: str, command: ChildCommand, staging: list[str]) -> list[str]:
        visible = [str(CHILD_PACKAGE)] + ([str(command.helpers_file)] if command.helpers_file else [])
        ro = [(p, p) for p in visible]
        if command.student_file is not None:
            student_file, student_dir = str(command.student_file), str(command.student_file.parent)
            # A folder that holds a course, kit itself or the suite (e.g. --path at the course root)
            # would show the hidden checks and solutions: then only the student's file is visible.
            shown = student_file if shows_course(student_dir, visible) else student_dir
            ro.append((shown, shown))
        if self.mode.drop_uid is not None:
            ro = [(readable_copy(src, staging), dest) for src, dest in ro]
        zygote = command.student_file is None  # a fork server (see ChildCommand)
        return self.bwrap_args(scratch, ro, zygote=zygote) + self.trampoline(argv, zygote=zygote)

    def trampoline(self, argv: list[str], *, zygote: bool = False) -> list[str]:
        # A fork server stays the grader's user (root: then its children's uid differs from its own);
        # its process limit leaves room for itself and each child's keeper and init.
        uid = None if zygote else self.mode.drop_uid
        own = self.max_processes + (1 + FORK_HELPERS if zygote else 0)
        if self.mode.own_userns:
            shared = own
        elif zygote and self.mode.drop_uid is not None:
            shared = -1  # root: each child sets its own limit after switching to nobody
        else:  # the limit counts every process of that uid on the machine
            shared = tasks_of(uid if uid is not None else os.getuid()) + own
        return [argv[0], "-P", "-s", "-c", TRAMPOLINE, str(shared), str(own), str(uid if uid is not None else -1),
                seccomp_filter().hex(), *argv]

    def fork_isolation(self) -> dict:
        """How a fork server in this sandbox walls off each child (kit.grader.child.zygote.Isolation)."""
        return {"uid": self.mode.drop_uid, "nproc": self.max_processes + FORK_HELPERS}

    def bwrap_args(self, scratch: str, ro_binds: list[tuple[str, str]], *, zygote: bool = False) -> list[str]:
        # a fork server makes a user namespace per child: it must be allowed to (it runs no student code)
        flags = [f for f in self.mode.flags if not (zygote and f == "--disable-userns")]
        m = Mounts(self.features)
        for d in SYSTEM_DIRS:
            if os.path.islink(d):
                m.add("--symlink", d, src=os.readlink(d))
            elif os.path.isdir(d):
                m.add("--ro-bind", d, src=d)
        for name in ETC_FILES:
            m.add("--ro-bind-try", f"/etc/{name}", src=f"/etc/{name}")
        m.add("--proc", "/proc")
        m.add("--dev", "/dev")
        nodes = gpu_binds(self.gpu_dev)
        for src, dest in nodes:
            m.add("--dev-bind", dest, src=src)
        if nodes:  # CUDA and NVML look up the devices in sysfs
            for d in SYS_FOR_GPU:
                m.add("--ro-bind-try", d, src=d)
        for d in [*python_dirs(), *self.extra_ro_binds]:
            m.add("--ro-bind", d, src=d)
        if "--size" in self.features and self.mode.name != "user-setuid":
            perms = ["--perms", "0777"] if "--perms" in self.features else []
            m.add("--tmpfs", scratch, *perms, "--size", str(self.scratch_mb << 20))
        else:
            if self.mode.drop_uid is not None:  # a root fork server (its group) must still see what is in it
                os.chown(scratch, self.mode.drop_uid, os.getgid() if zygote else self.mode.drop_uid)
                os.chmod(scratch, 0o750 if zygote else 0o700)
            m.add("--bind", scratch, src=scratch)
        for src, dest in sorted(ro_binds, key=lambda b: len(b[1])):
            m.add("--ro-bind", dest, src=src)
        return [self.bwrap, *flags, "--die-with-parent", "--new-session", *m.args,
                "--remount-ro", "/proc", "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", scratch,
                "--setenv", "HOME", scratch, "--setenv", "TMPDIR", scratch, "--"]

    # -- starting and stopping -----------------------------------------------------------------

    def started(self, proc, scratch, staging: list[str]) -> SandboxedChild:
        return SandboxedChild(proc, scratch, staging=staging)

    def apply_limits(self) -> None:
        """Runs in the forked process before bwrap starts; everything in the sandbox inherits it."""
        os.umask(0o022)
        super().apply_limits()

    def self_test(self) -> str | None:
        """None when a sandboxed Python starts and finds torch; else what went wrong (one line)."""
        scratch = tempfile.TemporaryDirectory(prefix="kit-probe-")
        try:
            check = ("import importlib.util as u, sys\n"
                     "s = u.find_spec('torch')\n"
                     "open(s.origin).close() if s else None\n"
                     "open('probe', 'w').write('ok')\n")
            argv = [sys.executable, "-P", "-s", "-c", check]
            cmd = self.bwrap_args(scratch.name, []) + self.trampoline(argv)
            out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                 timeout=PROBE_TIMEOUT, env=child_env(), preexec_fn=self.apply_limits,
                                 cwd=scratch.name)
        except (OSError, subprocess.SubprocessError) as exc:
            return str(exc)
        finally:
            scratch.cleanup()
        if out.returncode != 0:
            lines = [line for line in (out.stderr or out.stdout).splitlines() if line.strip()]
            return lines[-1] if lines else f"exit status {out.returncode}"
        return None
