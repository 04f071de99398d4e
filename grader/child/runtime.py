"""The student side of a check: import the student's code, then run what the grader asks, on handles.

The grader sends batches of operations (get an attribute, call, index, set an attribute) on
handles to objects that live here; this process runs them and answers with plain data only
(see wire.py). Whatever the student's code does here, the grader only ever reads data back and
compares it in its own process.
"""
from __future__ import annotations

import argparse
import builtins
import hashlib
import importlib.machinery
import importlib.util
import linecache
import os
import sys
import threading
import traceback

import torch

from .device import Device, no_cuda_hint, preload_soon
from .guard import ForbiddenCall, Guard, resolve
from .wire import ChannelClosed, Ref, WireError, read_message, write_message

STUDENT, HELPERS = 0, 1  # the two root handles
MAX_OUTPUT = 20_000  # characters of student output kept per batch
MAX_OPERANDS = 8  # operands described when a check's own step fails


class WrongResult(ValueError):
    """A trusted helper refused a value the student's code returned (its message says what is wrong with it)."""


class Helpers:
    """What a check may use inside the child besides the student's module (`child.<name>` in a check)."""

    torch = torch

    def __init__(self, suite_helpers: dict, student_dir: str = "") -> None:
        self.suite = argparse.Namespace(**suite_helpers)
        self.device = Device(student_dir)  # device checks: the GPU, or an emulated one (child/device.py)

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
    def backward(output, grad: torch.Tensor) -> None:
        """Backpropagate `grad` through the student's `output`, as `(output * grad).sum().backward()` would,
        after checking that `output` is a tensor of `grad`'s shape, dtype and device that autograd can reach:
        a wrong result fails here saying so, not in an operation the student never wrote (and a wrong
        shape that broadcasts is never silently accepted)."""
        if not isinstance(output, torch.Tensor):
            raise WrongResult(f"is a {type(output).__qualname__}, not a tensor")
        for what, got, want in (("shape", tuple(output.shape), tuple(grad.shape)), ("dtype", output.dtype, grad.dtype),
                                ("device", output.device, grad.device)):
            if got != want:
                raise WrongResult(f"has {what} {_shown(got)}; expected {_shown(want)}")
        if not output.requires_grad:
            raise WrongResult("does not require grad: it is not computed from the inputs or parameters with "
                              "operations autograd can follow (was something detached, or computed under no_grad?)")
        output.backward(grad)

    @staticmethod
    def autocast(fn, *args, device_type: str = "cuda", dtype=torch.float16):
        with torch.autocast(device_type=device_type, dtype=dtype):
            return fn(*args)


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
    """The objects of the check in progress, by handle, and how to run the grader's operations on them."""

    def __init__(self, student, helpers: Helpers, guard: Guard, student_dir: str) -> None:
        self.roots = {STUDENT: student, HELPERS: helpers}
        self.guard = guard
        self.student_dir = os.path.realpath(student_dir)
        self.objects: dict[int, object] = {}
        self.trusted: set[int] = set()
        self.device: Device = helpers.device
        self.preloading: threading.Thread | None = None  # device.preload_soon's, until the first batch
        self.made: dict[int, dict] = {}  # handle -> the operation that made it, to name values when a step fails

    def reset(self, seed: int, forbidden: list[str] | None) -> None:
        """A new check: only the roots, no hits, torch seeded to `seed`, and its component's forbidden APIs
        (None: the same as the last check's)."""
        self.objects = dict(self.roots)
        self.trusted = {HELPERS}
        self.made = {}
        self.guard.hits.clear()
        if forbidden is not None:
            self.guard.forbid(forbidden)
        self.device.reset()
        # torch.manual_seed, less its queued CUDA call (with a stack trace) on machines that have no CUDA: ~85 µs
        torch.default_generator.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)

    def resolve(self, value):
        if isinstance(value, Ref):
            return self.objects[value.handle]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.resolve(v) for v in value)
        return value

    def run_op(self, op: dict) -> None:
        kind, target = op["op"], self.objects[op["target"]]
        if kind == "getattr":
            result = getattr(target, op["name"])
        elif kind == "call":
            result = target(*self.resolve(op["args"]), **self.resolve(op["kwargs"]))
        elif kind == "getitem":
            result = target[self.resolve(op["key"])]
        elif kind == "setattr":
            setattr(target, op["name"], self.resolve(op["value"]))
            return
        else:
            raise ValueError(f"unknown operation {kind!r}")
        self.objects[op["result"]] = result
        self.made[op["result"]] = op
        if op["target"] in self.trusted:
            self.trusted.add(op["result"])
        else:
            self.guard.scan(result)

    def batch(self, msg: dict) -> dict:
        """Run the grader's operations and fetch their results, each under the guard: helpers too may run
        student code (a method the student overrode, a tensor subclass), and fetching may."""
        if self.preloading is not None:  # no thread of kit's may run beside the guard (guard.intact)
            self.preloading.join()
            self.preloading = None
        if msg["reset"]:
            self.reset(msg["seed"], msg["forbidden"])
        reply: dict = {"values": [], "error": None}
        ops, done, current = msg["ops"], 0, 0
        try:
            while done < len(ops):
                # one pass of the guard for the batch, and another from where a device check switches to its
                # device: its operations run under the device mode (child/device.py)
                self.guard.inner = self.device.mode
                with self.guard:
                    while done < len(ops) and self.guard.inner is self.device.mode:
                        current = done
                        self.run_op(ops[current])
                        done += 1
        except BaseException as exc:  # student code may raise anything; the guard, what it found changed
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) and ops[current]["target"] in self.trusted:
                raise
            self.device.saw(exc)
            reply["error"] = self.describe(exc, current, ops[current])
        self.guard.inner = None  # results are fetched as they are
        if reply["error"] is None:
            handle = None
            try:
                with self.guard:
                    for handle in msg["fetch"]:
                        reply["values"].append(to_data(self.objects[handle]))
            except BaseException as exc:  # noqa: BLE001 - NotData, or what a student's object raised when read
                reply["error"] = error_info(exc, op=None, fetch=handle)
                reply["values"] = []
        try:
            self.guard.check()
        except ForbiddenCall as exc:  # the guard was changed: nothing this batch computed leaves
            reply["error"] = error_info(exc, op=None)
            reply["values"] = []
        reply["forbidden"] = list(dict.fromkeys(self.guard.hits))
        return reply

    def describe(self, exc: BaseException, index: int, op: dict | None = None) -> dict:
        """The student-facing facts of an exception: only the student's frames, named relative to their folder;
        where it happened (a SyntaxError's line and column, else the innermost frame of the student's);
        and, when the operation that failed was the check's own step on a value of the student's, its operands."""
        frames, lines = [], []
        for f in traceback.extract_tb(exc.__traceback__):
            relative = self.relative(f.filename)
            if relative is not None:  # the line as it is in the file: traceback's carets count from its start
                lines.append(linecache.getline(f.filename, f.lineno) if f.lineno else "")
                frames.append(traceback.FrameSummary(relative, f.lineno, f.name, line=lines[-1] or f.line,
                                                     end_lineno=f.end_lineno, colno=f.colno, end_colno=f.end_colno))
        location, message = None, str(exc)
        if isinstance(exc, SyntaxError) and exc.lineno and self.relative(exc.filename or "") is not None:
            same_line = exc.end_lineno in (None, exc.lineno)
            location = place(self.relative(exc.filename), exc.lineno, exc.offset, exc.end_offset if same_line else None,
                             (exc.text or "").rstrip("\r\n"))
            message = exc.msg
        elif frames:
            f, line = frames[-1], lines[-1].rstrip("\r\n")
            same_line = f.end_lineno == f.lineno
            location = place(f.filename, f.lineno, _column(line, f.colno),
                             _column(line, f.end_colno) if same_line else None, line)
        info = error_info(exc, op=index, traceback="".join(traceback.format_list(frames)) if frames else "",
                          message=message, location=location)
        hint = no_cuda_hint(exc)
        if hint:
            info["message"] = f"{info['message'][:1000]}\n  {hint}"
        if op is not None:
            target = self.objects.get(op["target"])
            info["where"] = where(op, target)
            if not frames and self.is_step(op, target):
                info["step"] = True
                info["operands"] = self.operands(op, target)
        return info

    def relative(self, filename: str) -> str | None:
        """`filename` relative to the student's folder, or None if it is not in it."""
        path = os.path.realpath(filename) if filename else ""
        return os.path.relpath(path, self.student_dir) if path.startswith(self.student_dir + os.sep) else None

    # -- naming the student's values when one of the check's own steps fails on them -----------------------

    def is_step(self, op: dict, target) -> bool:
        """Whether `op` is the check's own step rather than the student's code: a trusted helper, or torch's (or a
        container's) own operation on a value (callers also require that no frame of the student's ran)."""
        if op["target"] in self.trusted:
            return True
        if op["op"] in ("getattr", "getitem"):
            return isinstance(target, (torch.Tensor, tuple, list, dict))
        return op["op"] == "call" and torch_method(target) is not None

    def operands(self, op: dict, target) -> list[dict]:
        """The values a failed step worked on, each named in the student's terms when it came from their code."""
        values: list[tuple[int | None, object]] = []  # (handle, value)
        if op["op"] == "call":
            owner = torch_method(target)
            if owner is not None:
                values.append((self.made.get(op["target"], {}).get("target"), owner))
            values += [(a.handle if isinstance(a, Ref) else None, self.resolve(a)) for a in op["args"]]
        else:
            values.append((op["target"], target))
        out = []
        for handle, value in values[:MAX_OPERANDS]:
            name, derived = self.name_of(handle) if handle is not None else ("", False)
            tensor = isinstance(value, torch.Tensor)
            out.append({"name": name, "derived": derived, "shape": list(value.shape) if tensor else None,
                        "dtype": str(value.dtype).removeprefix("torch.") if tensor else "",
                        "type": type(value).__qualname__})
        return out

    def name_of(self, handle: int, depth: int = 0) -> tuple[str, bool]:
        """("MultiHeadAttention.forward(...)[0]", False) for a value the student's code returned, or part of one;
        (that name, True) for a value the check computed from one; ("", False) for the check's own values."""
        op = self.made.get(handle)
        if op is None or depth > 50:
            return "", False
        source, target = op["target"], self.objects.get(op["target"])
        if source == STUDENT:
            return (op["name"], False) if op["op"] == "getattr" else ("", False)
        if source in self.trusted or (op["op"] == "call" and torch_method(target) is not None):
            owner = None if source in self.trusted else self.made.get(source, {}).get("target")
            for h in (owner, *(a.handle for a in op.get("args", ()) if isinstance(a, Ref))):
                name = self.name_of(h, depth + 1)[0] if h is not None else ""
                if name:
                    return name, True
            return "", False
        if op["op"] in ("getattr", "getitem") and isinstance(target, (torch.Tensor, tuple, list, dict)):
            name, derived = self.name_of(source, depth + 1)
            if not name:
                return "", False
            key = op.get("key")
            part = f".{op['name']}" if op["op"] == "getattr" else \
                f"[{key!r}]" if isinstance(key, (int, str)) and len(repr(key)) <= 20 else "[...]"
            return name + part, derived
        return where(op, target), False


def torch_method(target):
    """The tensor whose own torch method `target` is (`out.sum`, `out.__mul__`), or None."""
    owner = getattr(target, "__self__", None)
    name = getattr(target, "__name__", None)
    if isinstance(owner, torch.Tensor) and isinstance(name, str) and \
            getattr(type(owner), name, None) is getattr(torch.Tensor, name, object()):
        return owner
    return None


def place(file: str, line: int, column: int | None, end_column: int | None, source: str) -> dict:
    """Where in the student's files an error is; columns count characters from 1, as a SyntaxError's offset does."""
    return {"file": file, "line": int(line), "column": column, "end_column": end_column, "source": source[:500]}


def _column(line: str, byte_offset: int | None) -> int | None:
    """A traceback's byte offset into `line` as a column counted in characters from 1."""
    if byte_offset is None:
        return None
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8", "replace")) + 1


def _shown(value) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(map(str, value)) + ("," if len(value) == 1 else "") + ")"
    return str(value).removeprefix("torch.")


def error_info(exc: BaseException, *, op: int | None, fetch: int | None = None, traceback: str = "",
               message: str | None = None, location: dict | None = None) -> dict:
    return {"op": op, "fetch": fetch, "type": type(exc).__name__, "types": [c.__name__ for c in type(exc).__mro__],
            "message": (str(exc) if message is None else message)[:2000], "traceback": traceback[-4000:], "where": "",
            "location": location, "step": False, "operands": []}


def where(op: dict, target) -> str:
    """A short, student-facing name for what an operation ran: `MyLinear.forward(...)`."""
    kind = op["op"]
    if kind == "getattr":
        return f"{type(target).__qualname__}.{op['name']}"
    if kind == "setattr":
        return f"setting {type(target).__qualname__}.{op['name']}"
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


# -- importing student code from source only -------------------------------------------------------

class SourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles the .py file itself, never a cached or shipped .pyc, and records what it imported."""

    imported: dict[str, str] = {}  # path -> sha256 of the source that ran

    def get_code(self, fullname):
        source = self.get_data(self.path)
        SourceLoader.imported[self.path] = hashlib.sha256(source).hexdigest()
        return self.source_to_code(source, self.path)


def source_only(folder: str):
    """A path hook: under `folder`, modules are found as .py sources only (no bytecode, no binaries)."""
    root = os.path.realpath(folder)

    def hook(path: str):
        real = os.path.realpath(path)
        if real == root or real.startswith(root + os.sep):
            return importlib.machinery.FileFinder(path, (SourceLoader, importlib.machinery.SOURCE_SUFFIXES))
        raise ImportError(path)

    return hook


def load_student(path: str):
    """Import the graded file (and, through it, its folder's modules) from source."""
    folder = os.path.dirname(path)
    sys.path_hooks.insert(0, source_only(folder))
    sys.path_importer_cache.clear()
    sys.path.insert(0, folder)
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path, loader=SourceLoader(name, path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def imported_files(folder: str) -> list[list[str]]:
    """[relative path, sha256] of every student source that was imported so far."""
    root = os.path.realpath(folder)
    return sorted([os.path.relpath(path, root), digest] for path, digest in SourceLoader.imported.items())


def load_helpers(path: str | None) -> dict:
    if not path:
        return {}
    namespace: dict = {"__name__": "kit_suite_remote", "__file__": path}
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), namespace)
    return {k: v for k, v in namespace.items() if callable(v) and not k.startswith("_")}


def serve(rfd: int, wfd: int, student_file: str, helpers_file: str | None, forbidden: list[str],
          scratch: str, guard: Guard | None = None) -> None:
    """Import the student's module, say hello, then answer batches until the grader hangs up (`guard`: one
    already wired for `forbidden`, by the fork server this child was forked from)."""
    os.chdir(scratch)
    output = Output(os.path.join(scratch, ".output"))
    sys.dont_write_bytecode = True
    student_dir = os.path.dirname(os.path.abspath(student_file))
    guard = guard if guard is not None else Guard(forbidden)
    # full float32 precision on a GPU, as on the CPU: the references are computed so (kit.grader.plugin)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    runtime = Runtime(None, Helpers(load_helpers(helpers_file), student_dir), guard, student_dir)
    builtins_before = dict(vars(builtins))  # before student code ran (device.import_symbolic_shapes)
    try:
        with guard:
            student = load_student(student_file)
        guard.check()
    except BaseException as exc:  # noqa: BLE001 - whatever the import raised is the student's error
        write_message(wfd, {"ready": False, "error": runtime.describe(exc, -1), "output": output.take(),
                            "forbidden": list(dict.fromkeys(guard.hits)), "cuda": False,
                            "imported": imported_files(student_dir)})
        return
    runtime.roots[STUDENT] = student
    write_message(wfd, {"ready": True, "error": None, "output": output.take(),
                        "forbidden": list(dict.fromkeys(guard.hits)), "cuda": torch.cuda.is_available(),
                        "imported": imported_files(student_dir)})
    runtime.preloading = preload_soon(builtins_before)  # what a device check needs, while the grader gets ready
    while True:
        try:
            msg = read_message(rfd, requests=True)
        except ChannelClosed:
            return
        reply = runtime.batch(msg)
        reply["output"] = output.take()
        try:
            write_message(wfd, reply)
        except WireError as exc:  # raised before anything is written: say why instead of dying
            write_message(wfd, {**reply, "values": [], "error": error_info(exc, op=None)})
