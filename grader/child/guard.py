"""The forbidden-API guard: trips when student code calls an API the assignment forbids.

It sees calls however they were spelled: Python-level functions through tripwires and a
TorchFunctionMode, torch.ops.aten operators by their overload packet, and instances of
forbidden classes by a scan of what student code returns. The grader also scans the
source (kit.grader.forbidden); this guard catches what no static scan can see.
"""
from __future__ import annotations

import importlib
import sys

import torch
from torch.overrides import TorchFunctionMode


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

