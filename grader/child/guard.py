"""The forbidden-API guard: trips when student code uses an API the assignment forbids, or turns the guard off.

No single layer sees every call, so there are four (docs/sandbox.md, "Forbidden APIs: what is
caught and what is not"):

- tripwires: each forbidden callable (function, builtin, Tensor method, the functions of a
  forbidden module, the `__init__` of a forbidden class) is replaced, in every loaded module that
  holds it, by a wrapper that trips while student code runs, in any thread, whatever mode is on;
- a TorchFunctionMode sees torch functions and Tensor methods (torch.ops.aten.<op> included),
  however they were reached;
- a TorchDispatchMode sees ATen operators after decomposition (F.linear ends in aten.addmm),
  backward passes included, and is not turned off with the torch function modes;
- guard rules, the same in every assignment: what turns these layers off, runs code where they
  cannot look (threads, TorchScript, torch.library, torch.compile, native code, tensor subclasses
  with __torch_dispatch__) or searches memory for them.

`Guard` is also the context manager around the operations the grader runs here (a batch of
them, split where a device check switches to its device): it puts both modes on (in a device
check, child/device.py's dispatch mode goes on above its own: `inner`, so the guard still sees
every operator that runs), and afterwards checks that they are still there and that no thread
was left running (`intact`); after every batch `check` makes sure that no wire, no function of
the guard and none of its tables was replaced. A guard found changed stays tripped for good, and
nothing the batch computed is sent back.

Torch's own code is exempt while it imports one of its modules, for guard rules when its source
names the API it calls (vmap registering decompositions), and when it pops kit's function mode to
call its handler; each is decided from the Python stack by code object. All of this runs in the
process it watches, so code that goes looking for kit's objects in memory can still defeat it; the
grader's static scan (kit.grader.forbidden) flags the names such code needs.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
from operator import attrgetter, getitem, is_

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

PACKAGE = __name__.rpartition(".")[0]
TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
TAMPERED = "kit's guard"  # the name a changed guard is reported under
SUBCLASS = "__torch_dispatch__"  # ... and a tensor subclass that dispatches in Python

# Forbidden in every assignment (grader/forbidden.py has the same names for the static scan, and the
# words students read). Classes written in Python trip in __init__; everything else is replaced.
RULES = (
    # turning the guard off
    "torch._C.DisableTorchFunction",
    "torch._C._set_torch_function_state",
    "torch._C._DisableTorchDispatch",
    "torch._C._ExcludeDispatchKeyGuard",
    "torch._C._SetExcludeDispatchKeyGuard",
    "torch._C._ForceDispatchKeyGuard",
    "torch._C._dispatch_tls_set_dispatch_key_excluded",
    "torch._C._dispatch_find_schema_or_throw",
    "torch._C._dispatch_call_boxed",
    "torch._ops.OpOverload.redispatch",
    # other threads: modes are per thread
    "_thread.start_new_thread",
    "_thread.start_new",
    # TorchScript
    "torch.jit.script",
    "torch.jit.trace",
    "torch.jit.trace_module",
    "torch.jit.load",
    "torch.jit.freeze",
    "torch.jit.fork",
    "torch._C.CompilationUnit",
    "torch._C._jit_script_compile",
    "torch._C._jit_script_class_compile",
    "torch._C._create_function_from_graph",
    "torch._C._create_function_from_trace",
    "torch._C._create_function_from_trace_with_dict",
    "torch._C.import_ir_module",
    "torch._C.import_ir_module_from_buffer",
    # operators whose kernels are Python or native code
    "torch.library.Library",
    "torch.library.custom_op",
    "torch.library.triton_op",
    "torch.library.define",
    "torch.library.impl",
    "torch.library.impl_abstract",
    "torch.library.register_kernel",
    "torch.library.register_fake",
    "torch.library.register_autograd",
    "torch.library.register_torch_dispatch",
    "torch.library.register_vmap",
    "torch.library.register_autocast",
    "torch.library._scoped_library",
    "torch.library.Library.define",
    "torch.library.Library.impl",
    "torch.library.Library.fallback",
    "torch.library.Library._register_fake",
    "torch.library.Library._register_torch_dispatch_rule",
    "torch._C._dispatch_library",
    "torch._ops._Ops.load_library",
    "ctypes.CDLL",
    "ctypes.CDLL.__getattr__",
    "ctypes.CDLL.__getitem__",
    # compiling
    "torch.compile",
    "torch.export.export",
    # searching memory for the guard
    "gc.get_objects",
    "gc.get_referrers",
    "gc.get_referents",
    "sys._current_frames",
)
LAZY_RULES = (  # modules torch imports only when needed (seconds): wired once they are loaded
    "torch._dynamo.optimize",
    "torch._dynamo.export",
    "torch.utils.cpp_extension.load",
    "torch.utils.cpp_extension.load_inline",
)
# Torch pops other modes with these all the time: they trip only when they would pop kit's.
POP_FUNCTION, POP_DISPATCH = "torch._C._pop_torch_function_stack", "torch._C._pop_torch_dispatch_stack"

_LOAD = importlib._bootstrap._load_unlocked.__code__
# How a mode is popped: torch.overrides.handle_torch_function pops the mode whose handler it calls, and
# kit pops its own when an operation ends (_restore), through these helpers.
_POP_HELPERS = tuple(f.__code__ for f in (
    torch.overrides._pop_mode, torch.overrides._pop_mode_temporarily.__wrapped__, TorchFunctionMode.__exit__,
    torch.utils._python_dispatch._pop_mode, TorchDispatchMode.__exit__, contextlib._GeneratorContextManager.__enter__))
_getframe, _current_frames = sys._getframe, sys._current_frames
_CODE = attrgetter("__code__")
_NO_DISPATCH = torch._C._disabled_torch_dispatch_impl  # what torch.Tensor and nn.Parameter have
_len_function_stack, _function_stack_at = torch._C._len_torch_function_stack, torch._C._get_function_stack_at
_len_dispatch_stack, _dispatch_stack_at = torch._C._len_torch_dispatch_stack, torch._C._get_dispatch_stack_at
_pop_function_stack, _pop_dispatch_stack = torch._C._pop_torch_function_stack, torch._C._pop_torch_dispatch_stack


class ForbiddenCall(BaseException):
    """Raised when student code uses an API the assignment forbids (BaseException: hard to swallow)."""


def _wire(spec: tuple):
    """A stand-in for spec = (guard, original, name, rule, dispatch mode) that trips while the guard is on.

    On: the guard's flag is set (any thread), or its dispatch mode is on this thread's stack. The
    original lives only in this closure, not in an attribute of anything student code can reach.
    """
    def tripwire(*args, **kwargs):
        if spec[0].active or (_len_dispatch_stack() and _dispatch_stack_at(0) is spec[4]):
            spec[0].trip(spec[2], spec[3], args)
        return spec[1](*args, **kwargs)

    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):  # not __wrapped__: that unwraps it
        try:
            setattr(tripwire, attr, getattr(spec[1], attr))
        except (AttributeError, TypeError):
            pass
    return tripwire


WIRE_CODE = _wire((None, None, "", None, None)).__code__


class Guard:
    """Trips on forbidden torch APIs while student code runs; `with guard:` around the grader's operations."""

    def __init__(self, names: list[str]) -> None:
        self.active = False
        self.enabled: frozenset[str] = frozenset(names)  # what the current component may not use
        self.hits: list[str] = []
        self.broken: str | None = None  # what was found changed; the guard then refuses everything
        self.functions: dict[object, tuple[str, str]] = {}  # callable -> (name shown, rule), for the modes
        self.aten: dict[object, tuple[str, str | None]] = {}  # overload packet -> (name shown, rule)
        self.classes: dict[type, str] = {}
        self.known: set[str] = set()
        self.wires: list[tuple[object, str, object]] = []  # (owner's namespace, attribute, wire)
        self.lazy = list(LAZY_RULES)
        self.threads = len(_current_frames())
        self.entered_by = None  # the frame that turned the guard on: only it may turn it off
        self.inner: TorchDispatchMode | None = None  # kit's own mode, put on above the guard's by the next `with`
        self._inner: TorchDispatchMode | None = None
        self.function_mode, self.dispatch_mode = _modes(self)
        self._install([(name, None) for name in RULES] + [(POP_FUNCTION, POP_FUNCTION), (POP_DISPATCH, POP_DISPATCH)]
                      + [(name, name) for name in names])

    def forbid(self, names: list[str]) -> None:
        """Forbid `names` (assignment.toml's, for the component being checked) until the next call."""
        if self.on():
            self._tamper("its list of forbidden APIs was changed")
        new = [(name, name) for name in names if name not in self.known]
        if new:
            self._install(new)
        self.enabled = frozenset(names)

    def on(self) -> bool:
        return self.active or (_len_dispatch_stack() > 0 and _dispatch_stack_at(0) is self.dispatch_mode)

    # -- installing ------------------------------------------------------------------------------------

    def _install(self, plan: list[tuple[str, str | None]]) -> None:
        """Wire each (name, rule) (rule None: a guard rule), then remember what `check` compares."""
        replace: dict[int, tuple] = {}
        for name, rule in plan:
            self.known.add(name)
            self._plan(name, rule, replace)
        self._replace_everywhere(replace)
        self._seal()

    def _plan(self, name: str, rule: str | None, replace: dict[int, tuple]) -> None:
        """Wire `name`, or plan its replacement in `replace`, with its method forms and ATen operators."""
        if name.startswith("aten."):
            self._forbid_aten(name[5:], rule)
            return
        owner, _, attr = name.rpartition(".")
        obj, home = resolve(name), resolve(owner)
        if obj is None or home is None:
            return
        watched = rule is not None and rule not in (POP_FUNCTION, POP_DISPATCH)  # also seen by the modes
        if isinstance(obj, type(torch)):  # a whole module: each function in it
            for key, value in list(vars(obj).items()):
                if callable(value) and not key.startswith("__"):
                    self.functions[value] = (f"{name}.{key}", rule)
                    self._wire_attr(obj, key, value, f"{name}.{key}", rule)
            return
        if isinstance(obj, type) and watched:
            self.classes[obj] = name
        if isinstance(obj, type) and _writable(obj):
            self._wire_attr(obj, "__init__", obj.__init__, name, rule)
            return
        if isinstance(home, type):  # a method: on its class only
            self._wire_attr(home, attr, vars(home)[attr], name, rule)
            return
        wire = _wire((self, obj, name, rule, self.dispatch_mode))
        replace[id(obj)] = (obj, wire)
        if not watched:
            return
        self.functions[obj] = self.functions[wire] = (name, rule)
        for method in (attr, attr + "_"):  # torch.addmm -> Tensor.addmm, Tensor.addmm_
            original = getattr(torch.Tensor, method, None)
            if original is not None and getattr(original, "__code__", None) is not WIRE_CODE:
                self.functions[original] = (f"torch.Tensor.{method}", rule)
                self._wire_attr(torch.Tensor, method, original, f"torch.Tensor.{method}", rule)
        self._forbid_aten(attr, rule)

    def _forbid_aten(self, op: str, rule: str | None) -> None:
        """aten.<op> and its in-place form, every overload (the packet is what the modes compare)."""
        for variant in (op, op + "_"):
            try:
                packet = getattr(torch.ops.aten, variant)
            except (AttributeError, RuntimeError):  # an op this torch does not have cannot be called
                continue
            self.aten[packet] = (f"aten.{variant}", rule)

    def _wire_attr(self, owner, attr: str, original, name: str, rule: str | None) -> None:
        wire = _wire((self, original, name, rule, self.dispatch_mode))
        setattr(owner, attr, wire)
        if rule is not None and rule not in (POP_FUNCTION, POP_DISPATCH):
            self.functions[wire] = (name, rule)
        self.wires.append((owner.__dict__, attr, wire))

    def _replace_everywhere(self, replace: dict[int, tuple]) -> None:
        """Put each wire wherever a loaded module holds its original (`from torch._C import X` included)."""
        if not replace:
            return
        for module in list(sys.modules.values()):
            namespace = getattr(module, "__dict__", None)
            name = getattr(module, "__name__", "")
            if not isinstance(namespace, dict) or name == PACKAGE or name.startswith(PACKAGE + "."):
                continue
            for key, value in list(namespace.items()):
                found = replace.get(id(value))
                if found is not None and found[0] is value:
                    namespace[key] = found[1]
                    self.wires.append((namespace, key, found[1]))

    def _install_lazy(self) -> None:
        loaded = [name for name in self.lazy if name.rpartition(".")[0] in sys.modules]
        if loaded:
            self.lazy = [name for name in self.lazy if name not in loaded]
            self._install([(name, None) for name in loaded])

    # -- tripping --------------------------------------------------------------------------------------

    def trip(self, name: str, rule: str | None, args: tuple) -> None:
        """Raise ForbiddenCall if `name` is forbidden here and now (wires and modes call this while on)."""
        if rule == POP_FUNCTION:
            depth = _len_function_stack()
            if not depth or _function_stack_at(depth - 1) is not self.function_mode or _popped_rightly(_getframe(2)):
                return
        elif rule == POP_DISPATCH:
            depth = _len_dispatch_stack()
            if (args and args[0] is not None) or not depth or _dispatch_stack_at(depth - 1) is not self.dispatch_mode \
                    or _popped_rightly(_getframe(2)):
                return
        elif rule is not None and rule not in self.enabled:
            return
        if torch_importing(_getframe(2)) if rule is not None else torch_spells(_getframe(2), name):
            return
        self.hits.append(name)
        if rule is None or rule in (POP_FUNCTION, POP_DISPATCH):
            raise ForbiddenCall(f"{name} is not allowed: kit's forbidden-API guard must see everything your code runs")
        raise ForbiddenCall(f"{name} is not allowed here: write the computation yourself")

    def scan(self, obj) -> None:
        """Flag instances of forbidden classes: the object itself and, for modules, its children."""
        if not self.classes:
            return
        found = obj.modules() if isinstance(obj, torch.nn.Module) else (obj,)
        for item in found:
            for cls, name in self.classes.items():
                if isinstance(item, cls) and name in self.enabled and name not in self.hits:
                    self.hits.append(name)

    def _tamper(self, problem: str) -> None:
        """The guard was changed: it stays tripped, and says so, from now on."""
        self.broken = self.broken or problem
        self.hits.append(TAMPERED)
        raise ForbiddenCall(f"kit's forbidden-API guard was changed while your code ran: {self.broken}")

    # -- around the grader's operations ------------------------------------------------------------------

    def __enter__(self) -> Guard:
        if self.on() or self.broken is not None:
            self._tamper("it was turned on again from inside")
        if _len_function_stack() or _len_dispatch_stack():
            self._tamper("a torch mode was left on")
        if self.lazy:
            self._install_lazy()
        self.function_mode.__enter__()
        self.dispatch_mode.__enter__()
        self._inner = self.inner
        if self._inner is not None:  # above the guard's mode: every operation it passes on, the guard sees
            self._inner.__enter__()
        self._enabled = self.enabled
        self.entered_by = _getframe(1)
        self.active = True
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if _getframe(1) is not self.entered_by:
            self._tamper("it was turned off from inside")
        problem = self.intact()
        self.active = False
        self.entered_by = None
        _restore(_len_dispatch_stack, _dispatch_stack_at, _pop_dispatch_stack, self.dispatch_mode, self._inner)
        self._inner = None
        _restore(_len_function_stack, _function_stack_at, _pop_function_stack, None)
        if problem is not None:
            self._tamper(problem)

    def intact(self) -> str | None:
        """What of the guard's modes and state was changed, or left running; None if nothing (at every exit)."""
        if _len_function_stack() != 1 or _function_stack_at(0) is not self.function_mode:
            return "its torch function mode was removed or covered"
        depth = 1 if self._inner is None else 2
        if _len_dispatch_stack() != depth or _dispatch_stack_at(0) is not self.dispatch_mode \
                or (depth == 2 and _dispatch_stack_at(1) is not self._inner):
            return "its torch dispatch mode was removed or covered"
        if len(_current_frames()) > self.threads:
            return "a thread was left running"
        if self.active is not True or self.enabled is not self._enabled or self.inner is not self._inner:
            return "its state was changed"
        return None

    def check(self) -> None:
        """Raise ForbiddenCall if a tripwire, a function of the guard or its tables were changed since they
        were set up (after every batch of operations, before anything is sent back: it costs ~20 µs)."""
        if self.broken is not None:
            self._tamper(self.broken)
        try:  # compared by identity, in C: a replacement's __eq__ cannot answer for it
            if False in map(is_, map(getitem, self._namespaces, self._keys), self._values):
                self._tamper("a tripwire, or a function of kit's guard, was replaced")
        except KeyError:
            self._tamper("a tripwire, or a function of kit's guard, was removed")
        if False in map(is_, map(_CODE, self._functions), self._codes):
            self._tamper("the code of a tripwire, or of a function of kit's guard, was replaced")
        if (len(self.functions), len(self.aten), len(self.classes), len(self.wires)) != self._sizes:
            self._tamper("its tables were changed")

    def _seal(self) -> None:
        """Remember what `check` compares with: every wire, the methods of the guard and its modes, this
        module's functions, and the guard's tables."""
        owners = (vars(Guard), vars(type(self.function_mode)), vars(type(self.dispatch_mode)), globals())
        sealed = [*self.wires, *((namespace, key, value) for namespace in owners
                                 for key, value in namespace.items() if callable(value)),
                  *((vars(self), key, vars(self)[key]) for key in ("functions", "aten", "classes", "wires"))]
        self._namespaces, self._keys, self._values = (tuple(column) for column in zip(*sealed))
        self._functions = tuple(value for value in self._values if hasattr(value, "__code__"))
        self._codes = tuple(function.__code__ for function in self._functions)
        self._sizes = (len(self.functions), len(self.aten), len(self.classes), len(self.wires))


def _modes(guard: Guard) -> tuple[TorchFunctionMode, TorchDispatchMode]:
    """The guard's two modes; they reach it through a closure, not an attribute student code could read."""

    class FunctionGuard(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            entry = guard.functions.get(func)
            if entry is None and guard.aten:  # torch.ops.aten.<op> and its overloads
                entry = guard.aten.get(getattr(func, "overloadpacket", func))
            if entry is not None:
                guard.trip(entry[0], entry[1], args)
            return func(*args, **(kwargs or {}))

    class DispatchGuard(TorchDispatchMode):
        @classmethod
        def _should_skip_dynamo(cls) -> bool:  # else torch wraps __torch_dispatch__ in a 1.5 s import of dynamo
            return False

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            for cls in types:  # a tensor subclass that dispatches in Python: its code would run below this mode
                if cls.__torch_dispatch__ is not _NO_DISPATCH:
                    guard.trip(SUBCLASS, None, args)
            entry = guard.aten.get(func.overloadpacket)
            if entry is not None:
                guard.trip(entry[0], entry[1], args)
            return func(*args, **(kwargs or {}))

    return FunctionGuard(), DispatchGuard()


def _popped_rightly(frame) -> bool:
    """Whether a pop of kit's mode comes from torch calling that mode's handler, or from kit ending an operation."""
    while frame is not None and (frame.f_code is WIRE_CODE or frame.f_code in _POP_HELPERS):
        frame = frame.f_back
    return frame is not None and frame.f_code in _POPPERS


def _restore(length, at, pop, mine, inner=None) -> None:
    """Leave a mode stack empty: kit's dispatch modes (`mine` at the bottom, `inner` above it) through their
    __exit__ (torch keeps flags about them), anything else (student code's leftovers, the function mode) raw."""
    while length() > 1 or (length() == 1 and (mine is None or at(0) is not mine)):
        if inner is not None and length() == 2 and at(1) is inner:
            inner.__exit__(None, None, None)
        else:
            pop()
    if length() == 1:
        mine.__exit__(None, None, None)


_POPPERS = (torch.overrides.handle_torch_function.__code__, _restore.__code__)


def _writable(cls: type) -> bool:
    """Whether the class is written in Python (its __init__ can be wired), not a C type."""
    return bool(cls.__flags__ & (1 << 9))  # Py_TPFLAGS_HEAPTYPE


def torch_spells(frame, name: str) -> bool:
    """Whether torch's own code calls `name` here, naming it in its source (vmap's lazy registrations, the
    operators torch registers as it imports), rather than calling a function it was handed."""
    while frame is not None and frame.f_code is WIRE_CODE:
        frame = frame.f_back
    return frame is not None and frame.f_code.co_filename.startswith(TORCH_DIR) \
        and name.rpartition(".")[2] in frame.f_code.co_names


def torch_importing(frame) -> bool:
    """Whether torch's own code is importing one of torch's modules, with nothing else in between (kit's
    wires aside: torch's code reaches the originals through them)."""
    while frame is not None:
        code = frame.f_code
        if code is _LOAD:
            spec = frame.f_locals.get("spec")
            return spec is not None and (spec.name == "torch" or spec.name.startswith("torch."))
        if not (code is WIRE_CODE or code.co_filename.startswith(TORCH_DIR)
                or code.co_filename.startswith("<frozen importlib")):
            return False
        frame = frame.f_back
    return False


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
