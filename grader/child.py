"""The student side of a check: runs untrusted student code on what the grader sends.

This file is the only part of kit that runs next to student code. It is started as a
script inside the sandbox (so it imports nothing from kit) and speaks a tiny protocol
on two pipes: the grader sends a batch of operations (get an attribute, call, index,
set an attribute) on handles, the child runs them and answers with plain data only.
Whatever the student's code does here, the grader only ever reads tensors and numbers
back, with ``torch.load(weights_only=True)``, and compares them in its own process.
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import os
import select
import struct
import sys
import time
import traceback

import torch
from torch.overrides import TorchFunctionMode

HEADER = struct.Struct("<Q")
MAX_MESSAGE = 64 << 20  # a reply larger than this is not data a check asked for
MAX_OUTPUT = 20_000  # characters of student output kept per batch
STUDENT, HELPERS = 0, 1  # the two root handles


# --- framing (also used by the grader) -------------------------------------------------------

class ChannelClosed(Exception):
    """The other side closed its pipe."""


def encode(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    return HEADER.pack(len(data)) + data


def decode(data: bytes):
    return torch.load(io.BytesIO(data), weights_only=True, map_location=None)


def read_exact(fd: int, n: int, deadline: float | None = None) -> bytes:
    """Read n bytes from fd; with a deadline, raise TimeoutError when it passes."""
    chunks, left = [], n
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise ChannelClosed
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int, deadline: float | None = None):
    (size,) = HEADER.unpack(read_exact(fd, HEADER.size, deadline))
    if size > MAX_MESSAGE:
        raise ValueError(f"message of {size} bytes is over the {MAX_MESSAGE} byte limit")
    return decode(read_exact(fd, size, deadline))


def write_message(fd: int, obj) -> None:
    data = encode(obj)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# --- torch start-up -----------------------------------------------------------------------------

def defer_dynamo_import() -> None:
    """Let student code create a torch.optim.Optimizer without importing torch._dynamo (about 1 s).

    torch wraps Optimizer.add_param_group, state_dict, load_state_dict and zero_grad in
    `torch._disable_dynamo`, whose first call imports torch._dynamo only to mark them "never
    compile". Until torch._dynamo is imported nothing can be compiled, so until then each
    wrapper calls its function directly; once torch._dynamo exists it resolves to torch's own
    disabled function, as without this. A torch whose wrappers look different is left alone.
    """
    try:
        inner = torch._compile._disable_dynamo(defer_dynamo_import).__code__
    except AttributeError:
        return
    for wrapper in vars(torch.optim.Optimizer).values():
        if getattr(wrapper, "__code__", None) is not inner:
            continue
        cells = dict(zip(inner.co_freevars, (cell.cell_contents for cell in wrapper.__closure__)))
        fn, recursive = cells.get("fn"), cells.get("recursive", True)
        if callable(fn) and getattr(fn, "__dynamo_disable", None) is None:
            fn.__dynamo_disable = _until_dynamo(fn, recursive)


def _until_dynamo(fn, recursive: bool):
    def call(*args, **kwargs):
        dynamo = sys.modules.get("torch._dynamo")
        if dynamo is None:
            return fn(*args, **kwargs)
        disabled = dynamo.disable(fn, recursive, wrapping=False)
        fn.__dynamo_disable = disabled
        return disabled(*args, **kwargs)

    return call


# --- forbidden APIs ----------------------------------------------------------------------------

class ForbiddenCall(BaseException):
    """Raised when student code calls an API the assignment forbids (BaseException: hard to swallow)."""


class Guard:
    """Trips on forbidden torch APIs while student code runs, however they were reached."""

    def __init__(self) -> None:
        self.active = False
        self.enabled: set[str] = set()  # what the current component may not use
        self.hits: list[str] = []
        self.functions: dict[object, str] = {}
        self.aten: dict[object, str] = {}
        self.classes: dict[type, str] = {}
        self.patched: set[str] = set()

    def forbid(self, names: list[str]) -> None:
        for name in names:
            if name in self.patched:
                continue
            self.patched.add(name)
            if name.startswith("aten."):
                try:
                    self.aten[getattr(torch.ops.aten, name[5:])] = name
                except (AttributeError, RuntimeError):  # an op this torch does not have cannot be called
                    pass
                continue
            obj = resolve(name)
            if obj is None:
                continue
            if isinstance(obj, type):
                self.classes[obj] = name
                self._tripwire_init(obj, name)
            elif isinstance(obj, type(torch)):  # a whole module: every function in it
                for attr, value in list(vars(obj).items()):
                    if callable(value) and not attr.startswith("__"):
                        self._tripwire_attr(obj, attr, value, f"{name}.{attr}")
            else:
                self.functions[obj] = name
                if type(obj).__name__ == "function" and not hasattr(obj, "_kit_tripwire"):
                    # plain Python functions never reach TorchFunctionMode unless they opt in
                    module = sys.modules.get(getattr(obj, "__module__", ""), None)
                    if module is not None and getattr(module, obj.__name__, None) is obj:
                        self._tripwire_attr(module, obj.__name__, obj, name)

    def hit(self, name: str) -> None:
        if name in self.enabled or name.rsplit(".", 1)[0] in self.enabled:
            self.hits.append(name)
            raise ForbiddenCall(f"{name} is not allowed here: write the computation yourself")

    def _tripwire_attr(self, owner, attr: str, fn, name: str) -> None:
        guard = self

        def tripwire(*args, **kwargs):
            if guard.active:
                guard.hit(name)
            return fn(*args, **kwargs)

        tripwire._kit_tripwire = True
        self.functions[tripwire] = name
        setattr(owner, attr, tripwire)

    def _tripwire_init(self, cls: type, name: str) -> None:
        guard, original = self, cls.__init__

        def __init__(obj, *args, **kwargs):
            if guard.active:
                guard.hit(name)
            original(obj, *args, **kwargs)

        cls.__init__ = __init__

    def scan(self, obj) -> None:
        """Flag instances of forbidden classes: the object itself and, for modules, its children."""
        if not self.classes:
            return
        found = obj.modules() if isinstance(obj, torch.nn.Module) else (obj,)
        for item in found:
            for cls, name in self.classes.items():
                if isinstance(item, cls) and name in self.enabled and name not in self.hits:
                    self.hits.append(name)


def resolve(dotted: str):
    """torch.nn.functional.linear -> the object, or None when this torch has no such thing."""
    parts = dotted.split(".")
    try:
        obj = sys.modules.get(parts[0]) or importlib.import_module(parts[0])
    except ImportError:
        return None
    for part in parts[1:]:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            try:
                obj = importlib.import_module(f"{obj.__name__}.{part}")
            except (ImportError, AttributeError):
                return None
    return obj


class FunctionGuard(TorchFunctionMode):
    def __init__(self, guard: Guard) -> None:
        super().__init__()
        self.guard = guard

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = self.guard.functions.get(func)
        if name is None and self.guard.aten:  # torch.ops.aten.<op> and its overloads
            name = self.guard.aten.get(getattr(func, "overloadpacket", func))
        if name is not None:
            self.guard.hit(name)
        return func(*args, **(kwargs or {}))


# --- trusted helpers, reachable from checks as `child.<name>` ---------------------------------

class Helpers:
    """What a check may use inside the child besides the student's module."""

    torch = torch

    def __init__(self, suite_helpers: dict) -> None:
        self.suite = argparse.Namespace(**suite_helpers)

    @staticmethod
    def leaf(t: torch.Tensor) -> torch.Tensor:
        return t.detach().clone().requires_grad_(True)

    @staticmethod
    def param(t: torch.Tensor) -> torch.nn.Parameter:
        return torch.nn.Parameter(t.detach().clone())

    @staticmethod
    def list(x) -> list:
        return list(x)

    @staticmethod
    def len(x) -> int:
        return len(x)

    @staticmethod
    def isinstance(x, dotted: str) -> bool:
        cls = resolve(dotted)
        return cls is not None and isinstance(x, cls)

    @staticmethod
    def typename(x) -> str:
        return type(x).__qualname__

    @staticmethod
    def named_parameters(m) -> dict:
        return dict(m.named_parameters())

    @staticmethod
    def named_buffers(m) -> dict:
        return dict(m.named_buffers())

    @staticmethod
    def grads(m) -> dict:
        return {name: p.grad for name, p in m.named_parameters()}

    @staticmethod
    def autocast(fn, *args, device_type: str = "cuda", dtype=torch.float16):
        with torch.autocast(device_type=device_type, dtype=dtype):
            return fn(*args)


# --- running a batch ---------------------------------------------------------------------------

class NotData(Exception):
    pass


def to_data(value, depth: int = 0):
    """Only plain data leaves the child: tensors (detached), numbers, strings and containers."""
    if depth > 20:
        raise NotData("a structure nested more than 20 levels deep")
    if isinstance(value, torch.Tensor):
        return value.detach()
    if value is None or isinstance(value, (bool, int, float, complex, str, torch.dtype, torch.device)):
        return value
    if isinstance(value, torch.Size):
        return tuple(value)
    if isinstance(value, tuple):
        return tuple(to_data(v, depth + 1) for v in value)
    if isinstance(value, list):
        return [to_data(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {to_data(k, depth + 1): to_data(v, depth + 1) for k, v in value.items()}
    raise NotData(f"a {type(value).__qualname__} object")


class Runtime:
    def __init__(self, student, helpers: Helpers, guard: Guard, student_dir: str) -> None:
        self.roots = {STUDENT: student, HELPERS: helpers}
        self.guard = guard
        self.student_dir = os.path.realpath(student_dir)
        self.objects: dict[int, object] = {}
        self.trusted: set[int] = set()
        self.function_mode = FunctionGuard(guard)

    def reset(self, seed: int) -> None:
        self.objects = dict(self.roots)
        self.trusted = {HELPERS}
        self.guard.hits.clear()
        torch.manual_seed(seed)

    def resolve_args(self, value):
        if isinstance(value, dict):
            if "__ref__" in value and len(value) == 1:
                return self.objects[value["__ref__"]]
            return {k: self.resolve_args(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.resolve_args(v) for v in value)
        return value

    def run_op(self, op) -> None:
        kind, src = op[0], op[1]
        target = self.objects[src]
        if kind == "getattr":
            result, dst = getattr(target, op[2]), op[3]
        elif kind == "call":
            result, dst = target(*self.resolve_args(op[2]), **self.resolve_args(op[3])), op[4]
        elif kind == "getitem":
            result, dst = target[self.resolve_args(op[2])], op[3]
        elif kind == "setattr":
            setattr(target, op[2], self.resolve_args(op[3]))
            return
        else:
            raise ValueError(f"unknown operation {kind!r}")
        self.objects[dst] = result
        if src in self.trusted:
            self.trusted.add(dst)
        else:
            self.guard.scan(result)

    def batch(self, msg: dict) -> dict:
        if msg.get("reset"):
            self.reset(msg.get("seed", 0))
        self.guard.forbid(msg.get("forbidden", []))
        self.guard.enabled = set(msg.get("forbidden", []))
        reply: dict = {"values": [], "error": None}
        for index, op in enumerate(msg["ops"]):
            untrusted = op[1] not in self.trusted
            try:
                if untrusted:
                    self.guard.active = True
                    with self.function_mode:
                        self.run_op(op)
                else:
                    self.run_op(op)
            except BaseException as exc:
                if isinstance(exc, (KeyboardInterrupt, SystemExit)) and not untrusted:
                    raise
                reply["error"] = self.describe(exc, index)
                reply["error"]["where"] = where(op, self.objects.get(op[1]))
                break
            finally:
                self.guard.active = False
        if reply["error"] is None:
            for handle in msg.get("fetch", []):
                try:
                    reply["values"].append(to_data(self.objects[handle]))
                except NotData as exc:
                    reply["error"] = {"op": None, "fetch": handle, "type": "NotData", "types": ["NotData"],
                                      "message": str(exc), "traceback": ""}
                    reply["values"] = []
                    break
        reply["forbidden"] = list(dict.fromkeys(self.guard.hits))
        return reply

    def describe(self, exc: BaseException, index: int) -> dict:
        # only the student's frames, named relative to their folder: the same text wherever the file ran
        frames = []
        for f in traceback.extract_tb(exc.__traceback__):
            path = os.path.realpath(f.filename)
            if path.startswith(self.student_dir + os.sep):
                frames.append(traceback.FrameSummary(os.path.relpath(path, self.student_dir), f.lineno, f.name,
                                                     line=f.line))
        text = "".join(traceback.format_list(frames)) if frames else ""
        return {"op": index, "type": type(exc).__name__, "types": [c.__name__ for c in type(exc).__mro__],
                "message": str(exc)[:2000], "traceback": text[-4000:]}


def where(op, target) -> str:
    """A short, student-facing name for what an operation ran: `MyLinear.forward(...)`."""
    kind = op[0]
    if kind == "getattr":
        return f"{type(target).__qualname__}.{op[2]}"
    if kind == "setattr":
        return f"setting {type(target).__qualname__}.{op[2]}"
    if kind == "getitem":
        return f"{type(target).__qualname__}[...]"
    if isinstance(target, type):
        return f"{target.__qualname__}(...)"
    owner = getattr(target, "__self__", None)
    if owner is not None and not isinstance(owner, type(torch)):
        return f"{type(owner).__qualname__}.{getattr(target, '__name__', 'call')}(...)"
    if isinstance(target, torch.nn.Module):
        return f"{type(target).__qualname__}.forward(...)"
    return f"{getattr(target, '__qualname__', type(target).__qualname__)}(...)"


# --- process setup -----------------------------------------------------------------------------

class Output:
    """The student's stdout and stderr go to a file; each reply carries what was added."""

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        self.path, self.offset = path, 0

    def take(self) -> str:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(MAX_OUTPUT + 1)
                self.offset = f.seek(0, os.SEEK_END)
        except OSError:
            return ""
        text = data[:MAX_OUTPUT].decode("utf-8", "replace")
        return text + ("\n[... output truncated]" if len(data) > MAX_OUTPUT else "")


def load_student(path: str):
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_helpers(path: str | None) -> dict:
    if not path:
        return {}
    namespace: dict = {"__name__": "kit_suite_remote", "__file__": path}
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), namespace)
    return {k: v for k, v in namespace.items() if callable(v) and not k.startswith("_")}


def serve(rfd: int, wfd: int, student_file: str, helpers_file: str | None, forbidden: list[str],
          scratch: str) -> None:
    """Import the student's module, say hello, then answer batches until the grader hangs up."""
    os.chdir(scratch)
    output = Output(os.path.join(scratch, ".output"))
    sys.dont_write_bytecode = True
    student_dir = os.path.dirname(os.path.abspath(student_file))
    sys.path.insert(0, student_dir)
    guard = Guard()
    guard.forbid(forbidden)
    guard.enabled = set(forbidden)
    helpers = Helpers(load_helpers(helpers_file))
    runtime = Runtime(None, helpers, guard, student_dir)
    try:
        guard.active = True
        with FunctionGuard(guard):
            student = load_student(student_file)
    except BaseException as exc:  # noqa: BLE001
        guard.active = False
        error = runtime.describe(exc, -1)
        write_message(wfd, {"ready": False, "error": error, "output": output.take(),
                            "forbidden": list(dict.fromkeys(guard.hits))})
        return
    guard.active = False
    runtime.roots[STUDENT] = student
    write_message(wfd, {"ready": True, "cuda": torch.cuda.is_available(), "output": output.take(),
                        "forbidden": list(dict.fromkeys(guard.hits))})
    while True:
        try:
            msg = read_message(rfd)
        except ChannelClosed:
            return
        reply = runtime.batch(msg)
        reply["output"] = output.take()
        write_message(wfd, reply)


# --- the fork server ---------------------------------------------------------------------------
#
# A zygote is this script started once, with torch imported, that forks a fresh child per
# submission: the child skips the second-long torch import. The zygote never holds student
# data (the child reads its files from its own pipe after the fork, so a later child
# cannot find an earlier student's code in inherited memory), cannot be ptraced by its
# children (not dumpable), and after each child it kills whatever that child left running
# and empties the scratch area, so the next child starts from exactly the same state.

MAX_FILES = 64  # files a forked child accepts; a submission with more gets a freshly started child


def threads() -> int:
    """Threads of this process: forking is only safe when there is exactly one."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def send_control(sock, obj, fds: list[int] = ()) -> None:
    import socket

    data = encode(obj)
    socket.send_fds(sock, [data[:HEADER.size]], list(fds)) if fds else sock.sendall(data[:HEADER.size])
    sock.sendall(data[HEADER.size:])


def recv_control(sock, deadline: float | None = None) -> tuple[object, list[int]]:
    """One framed message and the descriptors sent with its first bytes; ChannelClosed at EOF."""
    import socket

    if deadline is not None and not select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
        raise TimeoutError
    head, fds, _, _ = socket.recv_fds(sock, HEADER.size, 4)
    if not head:
        raise ChannelClosed
    while len(head) < HEADER.size:
        more = sock.recv(HEADER.size - len(head))
        if not more:
            raise ChannelClosed
        head += more
    (size,) = HEADER.unpack(head)
    body = read_exact(sock.fileno(), size, deadline)
    return decode(body), fds


def wipe(folder: str) -> None:
    """Empty `folder`, whatever permissions a child left on what it made there."""
    import shutil

    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        for root, dirs, _ in os.walk(path):
            for d in dirs:
                try:
                    os.chmod(os.path.join(root, d), 0o700)
                except OSError:
                    pass
        try:
            os.chmod(path, 0o700)
        except OSError:
            pass
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {signal_name(os.WTERMSIG(status))}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


class Zygote:
    """Forks one child at a time on request; see the comment above."""

    def __init__(self, sock, scratch_root: str, helpers_file: str | None, own_pid_namespace: bool) -> None:
        self.sock, self.scratch_root = sock, scratch_root
        self.helpers_file, self.own_pid_namespace = helpers_file, own_pid_namespace
        self.pid: int | None = None
        self.status: int | None = None

    def run(self) -> None:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: children cannot ptrace or read our memory
        send_control(self.sock, {"ready": True})
        while True:
            try:
                msg, fds = recv_control(self.sock)
            except ChannelClosed:
                self.finish()
                return
            op = msg["op"]
            if op == "spawn":
                reply = self.spawn(msg, fds)
            elif op == "wait":
                reply = {"status": self.wait(msg.get("timeout", 5.0))}
            elif op == "kill":
                reply = {"status": self.finish()}
            else:
                reply = {"error": f"unknown operation {op!r}"}
            send_control(self.sock, reply)

    def spawn(self, msg: dict, fds: list[int]) -> dict:
        self.finish()
        if threads() != 1:  # a thread pool here would be copied without its threads: a deadlock waiting
            for fd in fds:
                os.close(fd)
            return {"error": f"the fork server has {threads()} threads; forking it is not safe"}
        rfd, wfd = fds
        try:
            pid = os.fork()
        except OSError as exc:  # out of processes or memory: the grader starts a child the slow way
            os.close(rfd)
            os.close(wfd)
            return {"error": f"the fork server could not fork ({exc.strerror})"}
        if pid == 0:
            try:
                self.sock.close()
                become_child(rfd, wfd, self.scratch_root, self.helpers_file, msg["forbidden"])
            finally:
                os._exit(0)
        os.close(rfd)
        os.close(wfd)
        self.pid, self.status = pid, None
        return {"pid": pid}

    def wait(self, timeout: float) -> str | None:
        """How the current child ended, waiting up to `timeout` s; None if it is still running."""
        if self.pid is None:
            return None if self.status is None else describe_status(self.status)
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pid, self.status = None, status
                return describe_status(status)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.005)

    def finish(self) -> str | None:
        """Kill the current child and everything it started, reap it, empty the scratch area."""
        import signal

        ended = self.wait(0)
        if self.pid is not None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
            ended = self.wait(10.0)
        if self.own_pid_namespace:  # whatever escaped the session (setsid daemons): all but us and init
            for _ in range(100):
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    break
                time.sleep(0.001)
        wipe(self.scratch_root)
        return ended


def become_child(rfd: int, wfd: int, scratch_root: str, helpers_file: str | None, forbidden: list[str]) -> None:
    """In the fresh fork: take the submission's files from the grader, then serve like a started child."""
    import tempfile

    os.setsid()
    scratch = tempfile.mkdtemp(dir=scratch_root)
    os.environ.update(HOME=scratch, TMPDIR=scratch)
    tempfile.tempdir = None
    first = read_message(rfd)
    folder = os.path.join(scratch, "submission")
    os.mkdir(folder)
    for rel, data in list(first["files"].items())[:MAX_FILES]:
        path = os.path.normpath(os.path.join(folder, rel))
        if not path.startswith(folder + os.sep):
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    serve(rfd, wfd, os.path.join(folder, first["student"]), helpers_file, forbidden, scratch)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fds", help="read,write pipe descriptors")
    parser.add_argument("--student", help="the student's .py file")
    parser.add_argument("--helpers", help="the suite's remote.py")
    parser.add_argument("--forbid", action="append", default=[])
    parser.add_argument("--scratch", required=True)
    parser.add_argument("--zygote", type=int, metavar="FD", help="be a fork server on this socket")
    parser.add_argument("--own-pid-namespace", action="store_true", help="the zygote may kill(-1) after a child")
    args = parser.parse_args(argv)
    defer_dynamo_import()
    if args.zygote is not None:
        import socket

        Zygote(socket.socket(fileno=args.zygote), args.scratch, args.helpers, args.own_pid_namespace).run()
    else:
        rfd, wfd = (int(x) for x in args.fds.split(","))
        serve(rfd, wfd, args.student, args.helpers, args.forbid, args.scratch)
    os._exit(0)  # skip interpreter teardown: student objects may misbehave in __del__


if __name__ == "__main__":
    main()
