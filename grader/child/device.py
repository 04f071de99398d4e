"""Device checks, the child's half: run student code on the GPU, or on an emulated one without a GPU.

A device check (`device_placement` in a suite) builds the student's module on the CPU, moves it
to the device, runs it on inputs made there and asks where outputs, gradients, buffers and
optimizer state ended up. With CUDA the device is the real GPU. Without it, it is PyTorch's
`meta` device, which has shapes and dtypes but no values, under `DeviceMode`: a dispatch mode
that rejects every operation mixing a tensor on the device with one on the CPU, the way CUDA
does (the meta device alone lets `cpu_buffer.add_(meta)` and `cpu @ meta` pass). Either way
`DeviceMode` remembers where each CPU tensor the student made came from, so that a mismatch is
explained by the line that made it and how to fix it.

What the emulation cannot run (anything that needs values: `.item()`, `if` on a tensor,
boolean-mask indexing, `.tolist()`) is reported as such (`failure()`), never as a mistake.
"""
from __future__ import annotations

import builtins
import linecache
import os
import sys
import threading
import traceback

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakTensorKeyDictionary

from .startup import _until_dynamo as until_dynamo

EMULATED = "meta"  # the device that stands in for a GPU on a machine without CUDA
aten = torch.ops.aten
# CUDA copies between devices on purpose: `gpu_tensor.copy_(cpu_tensor)` and `.to()` are fine
COPIES = frozenset({aten.copy_.default, aten._copy_from.default, aten._copy_from_and_resize.default,
                    aten._to_copy.default, aten.lift_fresh.default, aten.set_.source_Tensor})
# advanced indexing: a GPU tensor may be indexed with CPU indices (not the other way round)
INDEXING = frozenset({aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_})
# what the meta device says when an operation needs values it does not have
NEEDS_VALUES = (("item() cannot be called on meta", "needs the value of a tensor (.item(), float(), int(), or an "
                 "`if`/`while` on a tensor)"),
                ("nonzero", "needs the values of a tensor (boolean-mask indexing, nonzero, masked_select)"),
                ("Cannot copy out of meta tensor", "reads the values of a tensor (.tolist(), .numpy(), printing)"),
                ("meta tensor", "needs the values of a tensor"),
                ("'Meta' backend", "uses an operation that has no shape-only version"))


class DeviceMismatch(RuntimeError):
    """Student code mixed tensors on two devices (what CUDA raises, explained)."""


def prepare() -> None:
    """Make the meta device fast: C++ meta kernels where torch has them, no lazy import of torch._dynamo.

    torch runs every operator on the meta device through a Python reference when it has one (they
    serve its compiler's symbolic shapes), about 0.25 ms an operator against microseconds for the
    C++ meta kernel most operators also have; here the C++ kernel is used where there is one. And
    the Python kernels left import torch._dynamo on first use (about 1 s) through
    `torch._disable_dynamo`, only to mark them "never compile" (nothing is compiled until
    torch._dynamo is imported), and evaluate `torch._check(True)` through torch's symbolic shapes:
    until then both go straight to their function. Once per process, in the thread that runs checks.
    """
    if getattr(torch, "_kit_check_with", None) is not None:
        return
    original = getattr(torch, "_check_with", None)

    def check_with(error_type, cond, message):
        if cond is True:  # what torch's symbolic-shapes evaluation of a plain bool returns
            return
        original(error_type, cond, message)

    if original is not None:
        torch._check_with = check_with
    torch._kit_check_with = check_with
    try:
        import torch._decomp as decomp
        import torch._meta_registrations as registrations

        inner = torch._compile._disable_dynamo(prepare).__code__
        python_meta = registrations._meta_lib_dont_use_me_use_register_meta
        registered = set(python_meta._op_impls)
    except (AttributeError, ImportError):  # another torch: leave it as it is
        return
    seen: set[int] = set()
    kernels: dict = {}  # the Python meta kernel of each operator, picked as torch picks it
    for table in ("meta", "post_autograd", "pre_autograd"):
        for op, fn in decomp.global_decomposition_table[table].items():
            kernels.setdefault(op, fn)
            defer_dynamo(fn, inner, seen)
    python_meta._destroy()
    global _kept
    _kept = torch.library.Library("aten", "IMPL", "Meta")
    for op, fn in kernels.items():
        if isinstance(op, torch._ops.OpOverload) and f"{op.namespace}/{op._opname}" + (
                "" if op._overloadname == "default" else f".{op._overloadname}") + "/Meta" in registered \
                and not torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), "Meta"):
            _kept.impl(op, fn)


_kept = None  # the Python meta kernels of operators that have no C++ one (kept registered while it lives)


def import_symbolic_shapes(builtins_before: dict | None = None) -> None:
    """Import what the Python meta kernels left import on first use: torch's symbolic shapes, with sympy
    (about 0.4 s).

    sympy's import runs on Python's builtins: when the student's code has replaced some (`all`, `abs`),
    the import runs with `builtins_before` (as they were before student code ran), then puts the
    student's back. Student code that runs meanwhile sees the real builtins, which only it could mind.
    """
    changed = {k: v for k, v in vars(builtins).items()
               if builtins_before and k in builtins_before and builtins_before[k] is not v}
    try:
        vars(builtins).update({k: builtins_before[k] for k in changed})
        import torch.fx.experimental.symbolic_shapes  # noqa: F401 - imported for its side effect
    finally:
        vars(builtins).update(changed)


def preload() -> None:
    """Everything a device check needs, done once in a fork server before it forks (one thread)."""
    import_symbolic_shapes()
    prepare()


def preload_soon(builtins_before: dict) -> threading.Thread | None:
    """In a started child, once the student's module is imported: `prepare` now, while the grader is still
    getting ready (it changes torch's dispatcher, so in the thread that runs the checks), and
    `import_symbolic_shapes` in a thread of its own, which the caller joins before the guard is next on
    (the guard takes any thread beside it for student code's)."""
    prepare()
    if "torch.fx.experimental.symbolic_shapes" in sys.modules:
        return None
    thread = threading.Thread(target=import_symbolic_shapes, args=(builtins_before,), name="kit-preload",
                              daemon=True)
    thread.start()
    return thread


def defer_dynamo(fn, inner, seen: set[int]) -> None:
    """Find the `torch._disable_dynamo` wrappers in `fn`'s chain of wrapped functions and closures."""
    while fn is not None and id(fn) not in seen:
        seen.add(id(fn))
        code = getattr(fn, "__code__", None)
        cells = getattr(fn, "__closure__", None) or ()
        if code is inner:
            found = dict(zip(code.co_freevars, (cell.cell_contents for cell in cells)))
            wrapped = found.get("fn")
            if callable(wrapped) and getattr(wrapped, "__dynamo_disable", None) is None:
                wrapped.__dynamo_disable = until_dynamo(wrapped, found.get("recursive", True))
        for cell in cells:
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if callable(value) and not isinstance(value, type):
                defer_dynamo(value, inner, seen)
        fn = getattr(fn, "__wrapped__", None)


def target() -> str:
    """The device a device check runs on here: the GPU, or the emulated one."""
    return "cuda" if torch.cuda.is_available() else EMULATED


def is_cpu_scalar(t: torch.Tensor) -> bool:
    """A 0-dim CPU tensor, which CUDA operations accept next to CUDA tensors (like a Python number)."""
    return t.device.type == "cpu" and t.dim() == 0


def tensors_of(value) -> list[torch.Tensor]:
    return [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]


def mixed(func, args: tuple, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(a tensor on a device, a CPU tensor) that `func` would mix where CUDA refuses to; None if it would not."""
    if func in COPIES:
        return None
    if func.overloadpacket in INDEXING:
        self, indices = args[0], tensors_of(args[1] if len(args) > 1 else kwargs.get("indices"))
        values = tensors_of(args[2:3] or kwargs.get("values"))
        for index in indices:  # CPU indices are fine for any tensor; device indices only for one on that device
            if index.device != self.device and index.device.type != "cpu":
                return index, self
        others = [self, *values]
    else:
        others = tensors_of((args, kwargs))
    off_cpu = [t for t in others if t.device.type != "cpu"]
    on_cpu = [t for t in others if t.device.type == "cpu" and not is_cpu_scalar(t)]
    if off_cpu and on_cpu:
        return off_cpu[0], on_cpu[0]
    devices = {t.device for t in off_cpu}
    if len(devices) > 1:
        return off_cpu[0], next(t for t in off_cpu if t.device != off_cpu[0].device)
    return None


# ATen operators that make tensors, by the torch function students call
FACTORIES = {"lift_fresh": "tensor", "scalar_tensor": "tensor"}


class Place:
    """A line of the student's code: where it is, what it says, and the tensor arguments of its function."""

    def __init__(self, frame, root: str, op: str = "") -> None:
        self.op = FACTORIES.get(op, op)  # the torch function that made a tensor here
        self.file = os.path.relpath(frame.f_code.co_filename, root)
        self.line = frame.f_lineno
        self.function = frame.f_code.co_name
        self.code = linecache.getline(frame.f_code.co_filename, self.line).strip()
        self.on_device = device_tensor_name(frame)

    def __str__(self) -> str:
        return f"{self.file}, line {self.line}: `{self.code}`" if self.code else f"{self.file}, line {self.line}"


def device_tensor_name(frame) -> str | None:
    """A variable of the frame that holds a tensor on a device (its arguments first): what to create tensors on."""
    code = frame.f_code
    names = list(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
    names += [n for n in frame.f_locals if n not in names]
    for name in names:
        value = frame.f_locals.get(name)
        if isinstance(value, torch.Tensor) and value.device.type != "cpu" and name != "self":
            return name
    return None


class DeviceMode(TorchDispatchMode):
    """Sees every tensor operation while a device check runs. Emulating (`reject`), it refuses to mix
    devices as CUDA does; on a real GPU it only explains CUDA's own refusal. Either way it keeps, for
    each CPU tensor student code made, the line that made it."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # torch would wrap __torch_dispatch__ in torch._disable_dynamo: importing torch._dynamo, 1 s

    def __init__(self, student_dir: str, reject: bool) -> None:
        super().__init__()
        self.root = student_dir
        self.reject = reject
        self.origins = WeakTensorKeyDictionary()  # CPU tensor -> Place
        self._mine: dict[str, bool] = {}

    def student_frame(self):
        frame = sys._getframe(1)
        while frame is not None:
            name = frame.f_code.co_filename
            mine = self._mine.get(name)
            if mine is None:
                mine = self._mine[name] = os.path.realpath(name).startswith(self.root + os.sep)
            if mine:
                return frame
            frame = frame.f_back
        return None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        mix = mixed(func, args, kwargs)
        if mix is not None and self.reject:
            raise DeviceMismatch(self.explain(func, *mix))
        try:
            out = func(*args, **kwargs)
        except RuntimeError as exc:
            if mix is not None:
                raise DeviceMismatch(f"{self.explain(func, *mix)}\n(CUDA: {str(exc).splitlines()[0]})") from exc
            raise
        self.track(func, args, kwargs, out)
        return out

    def track(self, func, args: tuple, kwargs: dict, out) -> None:
        """Remember where CPU tensors made by student code come from (inherited through CPU-only operations)."""
        made = [t for t in tensors_of(out) if t.device.type == "cpu"]
        if not made:
            return
        inputs = tensors_of((args, kwargs))
        if any(t.device.type != "cpu" for t in inputs):
            return
        origin = next((self.origins[t] for t in inputs if t in self.origins), None)
        if origin is None:
            frame = self.student_frame()
            if frame is None:
                return
            origin = Place(frame, self.root, func.overloadpacket.__name__)
        for t in made:
            self.origins[t] = origin

    def explain(self, func, on_device: torch.Tensor, on_cpu: torch.Tensor) -> str:
        """What went wrong, at which line, and how to fix it."""
        frame = self.student_frame()
        where = Place(frame, self.root) if frame is not None else None
        op = func.overloadpacket.__name__
        origin = self.origins.get(on_cpu) if on_cpu.device.type == "cpu" else None
        device = "the GPU" if on_device.device.type in ("cuda", EMULATED) else str(on_device.device)
        if on_cpu.device.type != "cpu":  # two devices, neither the CPU
            return (f"{where or 'your code'} mixes tensors on {on_device.device} and on {on_cpu.device} "
                    f"(in {op}): every tensor an operation uses must be on the same device")
        meets = f"it meets tensors on {device} in {op}"
        if where is not None:
            meets += " on the same line" if origin and (where.file, where.line) == (origin.file, origin.line) \
                else f" at {where}"
        if origin is None:
            return (f"{where or 'your code'} mixes a tensor on {device} with a tensor on the CPU "
                    f"(shape {tuple(on_cpu.shape)}; in {op}): every tensor it uses must be on the same device")
        name = (origin.on_device or (where.on_device if where else None))
        fix = f"create it on {name}.device" if name else "create it on the device of the tensors it is used with"
        if origin.function == "__init__":
            return (f"{origin} creates a tensor on the CPU in __init__, and .to(device)/.cuda() does not move a "
                    f"plain tensor attribute: register it with self.register_buffer(...) (or {fix} in forward); "
                    f"{meets}")
        example = f", e.g. `torch.{origin.op}(..., device={name}.device)`" if name and origin.op.isidentifier() else ""
        return f"{origin} creates a tensor on the CPU; {fix}{example}; {meets}"


def student_line(exc: BaseException, root: str) -> str:
    """The innermost line of the student's code in `exc`'s traceback, as `file, line N: code`."""
    found = ""
    for f in traceback.extract_tb(exc.__traceback__):
        if os.path.realpath(f.filename).startswith(root + os.sep):
            found = f"{os.path.relpath(f.filename, root)}, line {f.lineno}: `{(f.line or '').strip()}`"
    return found


def no_cuda_hint(exc: BaseException) -> str | None:
    """A clear word for code that asks for CUDA on a machine without it (`.cuda()` in __init__, say)."""
    text = str(exc)
    if not any(s in text for s in ("Torch not compiled with CUDA", "no NVIDIA driver", "No CUDA GPUs are available",
                                   "CUDA driver initialization failed")) or torch.cuda.is_available():
        return None
    return ("your code asks for CUDA (.cuda(), device='cuda') and this machine has no CUDA device: do not move "
            "anything to 'cuda' yourself; create tensors on the device of the input (x.device) and let the caller "
            "move the module (model.to(device))")


class Device:
    """`child.device` in a check: the device this check runs on, and what ended up elsewhere."""

    def __init__(self, student_dir: str) -> None:
        self.root = os.path.realpath(student_dir) if student_dir else ""
        self.mode: DeviceMode | None = None
        self.error: dict | None = None

    def reset(self) -> None:
        """A new check starts: no device mode until it asks for one."""
        self.mode, self.error = None, None

    def use(self) -> str:
        """Run the rest of this check on the device (the GPU, else the emulated one); its name."""
        name = target()
        prepare()
        self.mode = DeviceMode(self.root, reject=name == EMULATED)
        return name

    # Inputs: on the emulated device `torch.empty` (values do not exist there; torch.randn would run a Python
    # meta kernel that imports sympy), on a GPU real values.

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32, requires_grad: bool = False) -> torch.Tensor:
        """A tensor of this shape on the device (random values on a GPU; none on the emulated device)."""
        device = target()
        t = torch.empty(shape, dtype=dtype, device=device) if device == EMULATED else \
            torch.randn(shape, dtype=dtype, device=device)
        return t.requires_grad_(requires_grad)

    def randint(self, high: int, *shape: int) -> torch.Tensor:
        """int64 class indices in [0, high) on the device."""
        device = target()
        return torch.empty(shape, dtype=torch.long, device=device) if device == EMULATED else \
            torch.randint(high, shape, device=device)

    def mask(self, *shape: int, causal: bool = False) -> torch.Tensor:
        """A bool mask on the device: True above the diagonal (causal), else True in the last column."""
        device = target()
        if device == EMULATED:
            return torch.empty(shape, dtype=torch.bool, device=device)
        mask = torch.ones(shape, dtype=torch.bool, device=device).triu(1) if causal else \
            torch.zeros(shape, dtype=torch.bool, device=device)
        if not causal:
            mask[..., -1] = True
        return mask

    def placement(self, named: dict) -> list[list[str]]:
        """[name, device] of every tensor in `named` that is not on the device (outputs, gradients,
        a module's parameters, gradients and buffers, an optimizer's state)."""
        device = target()
        off: list[list[str]] = []

        def visit(name: str, value) -> None:
            if isinstance(value, torch.Tensor):
                if value.device.type != device:
                    off.append([name, str(value.device)])
            elif isinstance(value, torch.nn.Module):
                for key, p in value.named_parameters():
                    visit(f"{name}.{key}", p)
                    visit(f"{name}.{key}.grad", p.grad)
                for key, b in value.named_buffers():
                    visit(f"{name}.{key}", b)
            elif isinstance(value, torch.optim.Optimizer):
                params = [p for group in value.param_groups for p in group["params"]]
                for i, p in enumerate(params):
                    for key, s in value.state.get(p, {}).items():
                        if not (isinstance(s, torch.Tensor) and is_cpu_scalar(s)):  # torch keeps `step` so too
                            visit(f"{name}.state[{i}][{key!r}]", s)
            elif isinstance(value, (list, tuple)):
                for i, v in enumerate(value):
                    visit(f"{name}[{i}]", v)
            elif isinstance(value, dict):
                for k, v in value.items():
                    visit(f"{name}[{k!r}]", v)

        for name, value in named.items():
            visit(name, value)
        return off

    def saw(self, exc: BaseException) -> None:
        """The exception that stopped this check's operations (kept for `failure`)."""
        if self.mode is None:
            return
        mismatch = next((e for e in chain(exc) if isinstance(e, DeviceMismatch)), None)
        if mismatch is not None:
            self.error = {"kind": "mismatch", "message": str(mismatch)}
        elif type(exc).__name__ == "ForbiddenCall":
            self.error = {"kind": "forbidden", "message": ""}
        elif self.mode.reject and (why := next((why for text, why in NEEDS_VALUES if text in str(exc)), None)):
            line = student_line(exc, self.root)  # a limit of the emulation, not a mistake: the check is not run
            self.error = {"kind": "not_emulated",
                          "message": f"{line} {why}, which the emulated device does not have" if line else why}
        else:  # the student's own error (a stub, a missing name): the check fails with it, as any check would
            self.error = {"kind": "error", "message": ""}

    def failure(self) -> dict | None:
        """Why this check's operations stopped: a device mismatch, a forbidden call, something the
        emulation cannot run, or another error; None when nothing stopped them."""
        return self.error


def chain(exc: BaseException):
    """`exc` and the exceptions it was raised from or during (student code may wrap a mismatch)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__
