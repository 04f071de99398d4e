"""Scenarios for the child's forbidden-API guard, each run in a fresh fork of one process (tests/test_guard.py).

    python tests/guard_scenarios.py NAME...   prints one JSON object: {NAME: outcome}

A scenario builds a Guard as the child does (`Guard(FORBIDDEN)`), runs code under `with guard:`
as the child runs an operation, then `guard.check()` as the child does after every batch, and
reports what happened: "ok", or "tripped: <hits>" when the guard raised ForbiddenCall. Forking
keeps a scenario that breaks the guard from touching the next.
"""
from __future__ import annotations

import json
import os
import sys

import torch
import torch.nn.functional as F

from kit.grader.child.guard import ForbiddenCall, Guard

FORBIDDEN = ["torch.nn.functional.linear", "torch.addmm", "aten.addmm", "torch.nn.Linear", "torch.nn.LayerNorm",
             "aten.native_batch_norm"]
SCENARIOS = {}


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


def operands():
    return torch.randn(4, 3, requires_grad=True), torch.randn(2, 3, requires_grad=True), torch.randn(2)


# -- what the guard must allow ---------------------------------------------------------------------------

@scenario
def honest_linear(guard):
    x, w, b = operands()
    with guard:
        (x @ w.T + b).sum().backward()  # Tensor.backward pops kit's function mode to call its handler


@scenario
def own_modes(guard):
    """A student's own torch function and dispatch modes, pushed and popped with `with`."""
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    class Seen(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    x, w, b = operands()
    with guard:
        with Count(), Seen():
            (x @ w.T + b).sum().backward()


@scenario
def other_component(guard):
    """What another component may not use is fine here."""
    guard.forbid(["torch.nn.LayerNorm"])
    x, w, b = operands()
    with guard:
        torch.addmm(b, x, w.T)
        b.addmm(x, w.T)


@scenario
def honest_autocast(guard):
    """What child.autocast does for GPU checks, on the CPU."""
    x, w, b = operands()
    with guard:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            (x @ w.T + b).float().sum().backward()


@scenario
def honest_vmap(guard):
    """torch.vmap registers its decompositions with torch.library the first time it runs: allowed."""
    x, w, b = operands()
    with guard:
        torch.vmap(lambda row: row @ w.T + b)(x)


@scenario
def torch_imports_its_own(guard):
    """torch.optim.SGD.step imports torch._dynamo, which registers operators with torch.library: allowed."""
    p = torch.nn.Parameter(torch.randn(3))
    p.grad = torch.randn(3)
    with guard:
        torch.optim.SGD([p], lr=0.1).step()


# -- every spelling of a forbidden API -------------------------------------------------------------------

@scenario
def method_form(guard):
    x, w, b = operands()
    with guard:
        b.addmm(x, w.T)


@scenario
def in_place_method(guard):
    x, w, b = operands()
    with guard:
        torch.zeros(4, 2).addmm_(x.detach(), w.detach().T)


@scenario
def tensor_base_method(guard):
    """The C method itself (torch.Tensor's attribute is wired): the modes see it."""
    x, w, b = operands()
    with guard:
        torch._C.TensorBase.addmm(b, x, w.T)


@scenario
def aten_out_overload(guard):
    x, w, b = operands()
    with guard:
        torch.ops.aten.addmm.out(b, x.detach(), w.detach().T, out=torch.empty(4, 2))


@scenario
def decomposed(guard):
    """F.linear reached through an alias nobody wired: it ends in aten.addmm."""
    x, w, b = operands()
    with guard:
        torch._C._nn.linear(x, w, b)


@scenario
def vmapped(guard):
    x, w, b = operands()
    with guard:
        torch.vmap(lambda row: torch.addmm(b[None], row[None], w.T))(x)


@scenario
def in_backward(guard):
    """A forbidden operator that only runs in a backward pass."""
    class Norm(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, grad):
            return torch.native_batch_norm(grad, None, None, None, None, True, 0.1, 1e-5)[0]

    x = torch.randn(4, 3, 2, 2, requires_grad=True)
    with guard:
        Norm.apply(x).sum().backward()


@scenario
def forbidden_class(guard):
    with guard:
        torch.nn.Linear(3, 2)


# -- turning the guard off, and what it cannot see ---------------------------------------------------------

@scenario
def disable_torch_function(guard):
    with guard:
        with torch._C.DisableTorchFunction():
            pass


@scenario
def exclude_python_key(guard):
    with guard:
        with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(torch._C.DispatchKey.Python)):
            pass


@scenario
def no_dispatch_alias(guard):
    """torch.utils._mode_utils.no_dispatch is torch._C._DisableTorchDispatch under another name."""
    from torch.utils._mode_utils import no_dispatch

    with guard:
        with no_dispatch():
            pass


@scenario
def pop_through_overrides(guard):
    from torch.overrides import _pop_mode

    with guard:
        _pop_mode()


@scenario
def pop_dispatch_mode(guard):
    from torch.utils._python_dispatch import _pop_mode_temporarily

    with guard:
        with _pop_mode_temporarily():
            pass


@scenario
def thread_pool(guard):
    from concurrent.futures import ThreadPoolExecutor

    with guard:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(print).result()


@scenario
def script_function(guard):
    with guard:
        torch.jit.script(lambda x: x + 1)


@scenario
def custom_op(guard):
    with guard:
        torch.library.custom_op("scenario::f", mutates_args=())(lambda x: x.clone())


@scenario
def custom_op_through_torch(guard):
    """torch.library.Library handed to a torch function that calls it: torch does not name it, so it trips."""
    from torch.utils.checkpoint import checkpoint

    with guard:
        checkpoint(torch.library.Library, "scenario", "DEF", use_reentrant=False)


@scenario
def native_library(guard):
    import ctypes

    with guard:
        ctypes.CDLL(None)


@scenario
def memory_search(guard):
    import gc

    with guard:
        gc.get_referrers(guard)


# -- changing the guard ----------------------------------------------------------------------------------

@scenario
def unwired(guard):
    """Putting an original back where the guard had wired it (here: F.linear's builtin, found through torch._C)."""
    with guard:
        F.linear = torch._C._nn.__dict__["linear"].__closure__[0].cell_contents[1]


@scenario
def mode_left_on(guard):
    from torch.overrides import TorchFunctionMode

    with guard:
        TorchFunctionMode().__enter__()


@scenario
def handler_patched(guard):
    mode = torch._C._get_function_stack_at  # looked up before the guard is on
    with guard:
        type(mode(0)).__torch_function__ = lambda self, func, types, args=(), kwargs=None: func(*args, **kwargs)


@scenario
def switched_off_from_inside(guard):
    with guard:
        guard.__exit__(None, None, None)


@scenario
def list_changed_from_inside(guard):
    with guard:
        guard.forbid([])


@scenario
def refuses_after_a_change(guard):
    """Once changed, the guard runs nothing more (a second operation, honest, is refused)."""
    try:
        with guard:
            guard.enabled = frozenset()
    except ForbiddenCall:
        pass
    guard.hits.clear()
    with guard:
        pass


def run(name: str) -> str:
    guard = Guard(FORBIDDEN)
    try:
        SCENARIOS[name](guard)
        guard.check()
    except ForbiddenCall:
        return "tripped: " + ", ".join(dict.fromkeys(guard.hits))
    except Exception as exc:  # noqa: BLE001 - a scenario's own failure is its outcome
        return f"error: {type(exc).__name__}: {exc}"
    return "ok" if not guard.hits else "flagged: " + ", ".join(dict.fromkeys(guard.hits))


def main(names: list[str]) -> None:
    outcomes = {}
    for name in names:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            os.write(write, run(name).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as f:
            outcomes[name] = f.read().decode() or "no outcome"
        os.waitpid(pid, 0)
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main(sys.argv[1:] or list(SCENARIOS))
