"""Proxies of objects that live in the child: checks use them like the real thing.

Using a proxy only records an operation. `fetch` ships every recorded operation to
the child in one message and brings back plain data, so a check costs one round trip
however many steps it takes, and nothing from the child is ever executed here.
"""
from __future__ import annotations

import cmath
from dataclasses import dataclass
from typing import Any

from .child.wire import Ref
from .runner import Runner

STUDENT, HELPERS = 0, 1  # root handles, as in kit.grader.child.runtime


class CheckFailed(AssertionError):
    """A check's verdict with a message meant for people (no traceback noise)."""


class StudentCodeError(CheckFailed):
    """The student's code raised while the check ran."""


class MissingName(StudentCodeError):
    """The student's module does not define a name the check asked for (a component's class, said once)."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


class WrongValue(CheckFailed):
    """One of the check's own steps (a helper such as `child.backward`, or torch's own operation) failed on a
    value the student's code returned: the message names that value and what is wrong with it, never the
    operation, which the student did not write."""


@dataclass
class StudentException:
    type: str
    types: list[str]
    message: str


class Remote:
    """The recorded-but-not-yet-run operations of one check, and how to run them."""

    def __init__(self, runner: Runner, module_name: str, forbidden: list[str]) -> None:
        self.runner = runner
        self.module_name = module_name
        self.forbidden = forbidden
        self.pending: list[dict] = []
        self.exprs: list[str] = []
        self.next_id = 2
        self.fresh = True
        self.hits: list[str] = []

    def root(self, handle: int, expr: str) -> Proxy:
        return Proxy(self, handle, expr)

    def record(self, op: str, src: Proxy, expr: str, **fields: Any) -> Proxy | None:
        """Queue one operation on `src` (kit.grader.child.runtime runs it); its result is a new proxy."""
        if src._remote is not self:
            raise CheckFailed("a proxy from another check was used (suite bug)")
        self.exprs.append(expr)
        if op == "setattr":
            self.pending.append({"op": op, "target": src._id, **fields})
            return None
        handle, self.next_id = self.next_id, self.next_id + 1
        self.pending.append({"op": op, "target": src._id, **fields, "result": handle})
        return Proxy(self, handle, expr)

    def encode(self, value: Any) -> Any:
        if isinstance(value, Proxy):
            if value._remote is not self:
                raise CheckFailed("a proxy from another check was used (suite bug)")
            return Ref(value._id)
        if isinstance(value, dict):
            return {k: self.encode(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.encode(v) for v in value)
        return value

    def flush(self, handles: list[int]) -> dict:
        # the first batch of a check starts it afresh, with the check's forbidden APIs
        msg = {"reset": self.fresh, "seed": 0, "forbidden": self.forbidden if self.fresh else None,
               "ops": self.pending, "fetch": handles}
        self.fresh = False
        ops, exprs, self.pending, self.exprs = self.pending, self.exprs, [], []
        reply = self.runner.request_batch(msg)
        self.hits.extend(h for h in reply.get("forbidden", []) if h not in self.hits)
        error = reply.get("error")
        if error is not None:
            raise self.explain(error, exprs, ops)
        return reply

    def explain(self, error: dict, exprs: list[str], ops: list[dict]) -> CheckFailed:
        if error.get("op") is None:
            return CheckFailed(f"expected data back but got {error['message']}")
        op = ops[error["op"]]
        expr = error.get("where") or exprs[error["op"]]
        if error["type"] == "ForbiddenCall":
            return StudentCodeError(f"{expr}: {error['message']}")
        if error["type"] == "AttributeError" and op["target"] == STUDENT and op["op"] == "getattr" \
                and not error.get("traceback"):
            return MissingName(f"{self.module_name}.py does not define {op['name']}", op["name"])
        if error.get("step"):
            return WrongValue(step_failed(error))
        if error["type"] == "NotImplementedError":
            return StudentCodeError(f"{expr} is not implemented yet ({error['message'] or 'NotImplementedError'})")
        text = f"{expr} raised {error['type']}: {error['message']}"
        if error.get("traceback"):
            text += "\n" + error["traceback"].rstrip()
        exc = StudentCodeError(text)
        exc.student = StudentException(error["type"], error["types"], error["message"])
        return exc


def step_failed(error: dict) -> str:
    """Why one of the check's own steps failed, in terms of the student's value it worked on (kit.grader.child.
    runtime sends the operands: their names in the student's terms, shapes and dtypes)."""
    operands = error.get("operands", [])
    theirs = next((o for o in operands if o["name"]), None)
    if theirs is None:  # only the check's own values: a mistake in the suite, not the student's
        return (f"this check failed on its own values ({error['type']}: {error['message']}); "
                f"please tell your instructor")
    name = f"a value this check computed from {theirs['name']}" if theirs["derived"] else theirs["name"]
    if error["type"] == "WrongResult":  # a trusted helper said what is wrong (child.backward)
        return f"{name} {error['message']}"
    mine = next((o for o in operands if not o["name"] and o["shape"] is not None), None)
    if theirs["shape"] is None:
        return f"{name} is a {theirs['type']}, which this check cannot use ({error['type']}: {error['message']})"
    if mine is not None and mine["shape"] != theirs["shape"] and not theirs["derived"]:
        return f"{name} has shape {shape_text(theirs['shape'])}; expected {shape_text(mine['shape'])}"
    return (f"this check could not use {name} (shape {shape_text(theirs['shape'])}, {theirs['dtype']}): "
            f"{error['type']}: {error['message']}")


def shape_text(shape: list[int]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _describe(value: Any) -> str:
    if isinstance(value, Proxy):
        return value._expr
    if type(value).__name__ in ("Tensor", "Parameter"):
        return f"Tensor{list(value.shape)}"
    if isinstance(value, (list, tuple)) and len(value) > 4:
        return f"[{len(value)} items]"
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


class Proxy:
    """A stand-in for an object in the child. Read attributes, call, index, assign; then fetch()."""

    __slots__ = ("_remote", "_id", "_expr")

    def __init__(self, remote: Remote, handle: int, expr: str) -> None:
        object.__setattr__(self, "_remote", remote)
        object.__setattr__(self, "_id", handle)
        object.__setattr__(self, "_expr", expr)

    def __getattr__(self, name: str) -> Proxy:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._remote.record("getattr", self, f"{self._expr}.{name}", name=name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._remote.record("setattr", self, f"{self._expr}.{name} = ...", name=name, value=self._remote.encode(value))

    def __call__(self, *args: Any, **kwargs: Any) -> Proxy:
        parts = [_describe(a) for a in args] + [f"{k}={_describe(v)}" for k, v in kwargs.items()]
        expr = f"{self._expr}({', '.join(parts)})"
        return self._remote.record("call", self, expr if len(expr) < 100 else expr[:97] + "...",
                                   args=self._remote.encode(list(args)), kwargs=self._remote.encode(kwargs))

    def __getitem__(self, key: Any) -> Proxy:
        return self._remote.record("getitem", self, f"{self._expr}[{_describe(key)}]", key=self._remote.encode(key))

    def __repr__(self) -> str:
        return f"<in the child: {self._expr}>"

    def __bool__(self) -> bool:
        raise TypeError(f"{self._expr} lives in the child: fetch() it before testing its truth")

    def __iter__(self):
        raise TypeError(f"{self._expr} lives in the child: fetch() it, or use child.list(...)")


def _binary(name: str):
    def op(self: Proxy, other: Any) -> Proxy:
        return self._remote.record("getattr", self, f"{self._expr}.{name}", name=name)(other)
    op.__name__ = name
    return op


for _name in ("add", "sub", "mul", "truediv", "matmul", "pow", "radd", "rsub", "rmul", "rtruediv"):
    setattr(Proxy, f"__{_name}__", _binary(f"__{_name}__"))
Proxy.__neg__ = lambda self: self._remote.record("getattr", self, f"-{self._expr}", name="__neg__")()


def fetch(*proxies: Proxy, finite: bool = True) -> Any:
    """Run everything recorded so far and bring these values back as data.

    Every floating-point number fetched must be finite, or the check fails saying where the
    NaN or inf is: a check written as `if error > tol: fail(...)` would let them pass, since
    every comparison with NaN is false. A check that expects non-finite values passes
    `finite=False` and judges them with `assert_close`, which compares where NaN and inf are.
    """
    if not proxies:
        raise TypeError("fetch() needs at least one proxy")
    remote = proxies[0]._remote
    values = remote.flush([p._id for p in proxies])["values"]
    if finite:
        for proxy, value in zip(proxies, values):
            problem = non_finite(value)
            if problem:
                raise CheckFailed(f"{proxy._expr}{problem}")
    return values[0] if len(proxies) == 1 else tuple(values)


def non_finite(value: Any, where: str = "") -> str | None:
    """Where `value` (data fetched from the child) holds NaN or inf, said for people; None if nowhere."""
    if isinstance(value, float | complex):
        return None if cmath.isfinite(value) else f"{where} is {_word(value)}, not a finite number"
    if isinstance(value, dict):
        items = ((f"{where}[{k!r}]", v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    elif type(value).__name__ == "Tensor":  # whoever fetched a tensor has imported torch
        return _non_finite_tensor(value, where)
    else:
        return None
    return next((problem for w, v in items if (problem := non_finite(v, w))), None)


def _non_finite_tensor(t, where: str) -> str | None:
    import torch

    if not (t.is_floating_point() or t.is_complex()) or t.device.type == "meta":
        return None
    bad = ~torch.isfinite(t).cpu()
    if not bool(bad.any()):
        return None
    if t.numel() == 1:
        return f"{where} is {_word(t.item())}, not a finite number"
    nan = int(torch.isnan(t).sum())
    counts = " and ".join(f"{n} {kind}" for n, kind in ((nan, "NaN"), (int(bad.sum()) - nan, "inf")) if n)
    first = ", ".join(str(int(i)) for i in bad.nonzero()[0])
    return (f"{where} holds {counts} among its {t.numel()} values (first at index ({first}"
            f"{',' if t.dim() == 1 else ''})): expected finite numbers")


def _word(x: float | complex) -> str:
    return "NaN" if x != x else str(x)  # inf, -inf, or a complex number with an infinite part


def run(proxy: Proxy) -> None:
    """Run everything recorded so far in this proxy's check, fetching nothing."""
    proxy._remote.flush([])


def student_raises(proxy: Proxy) -> StudentException:
    """The exception the student's code raised computing this value; fails the check if none was."""
    try:
        fetch(proxy, finite=False)
    except StudentCodeError as exc:
        student = getattr(exc, "student", None)
        if student is not None:
            return student
        raise
    raise CheckFailed(f"{proxy._expr} should have raised an error, but it returned normally")
