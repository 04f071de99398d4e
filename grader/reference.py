"""Memoised torch references: what a check compares with, computed once per process.

Every student of an assignment gets the same inputs, so the torch side of a check (the
expected outputs and gradients, the values of known mistakes) is the same for all of
them. `@reference` memoises a function of hashable arguments (seeds, shapes, flags) for
the life of the process: once per `kit grade` worker, shared by every submission it
grades. The cache never leaves the grader's process, so hidden seeds stay secret.

Two rules make a cached result indistinguishable from a fresh one:

- every call returns a fresh copy (tensors cloned, containers rebuilt), so a check
  that changes what it got cannot change the next student's expected values;
- the function runs with torch's random state (CPU, and CUDA once initialised) saved,
  seeded to 0 and restored afterwards, so its result depends only on its arguments and
  a hit leaves the caller's random numbers as a miss does. A function that initialises
  CUDA itself must seed it (`torch.manual_seed(seed)` does).

`KIT_REFERENCE_CACHE=0` (read at every call) or `set_cache_enabled(False)` turns the
memo off, to show that it changes no grade.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, TypeVar

import torch

ENV = "KIT_REFERENCE_CACHE"
OFF = ("0", "false", "no", "off")
Fn = TypeVar("Fn", bound=Callable[..., Any])
IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device, torch.Size)

_memos: list[dict] = []
_override: bool | None = None
_counts = {"hits": 0, "misses": 0}


def reference(fn: Fn) -> Fn:
    """Memoise `fn` (arguments hashable by value; result: tensors, numbers, strings, None and
    lists/tuples/dicts of them). Each call returns a copy of the result."""
    memo: dict = {}
    _memos.append(memo)

    @functools.wraps(fn)
    def memoised(*args: Any, **kwargs: Any) -> Any:
        if not cache_enabled():
            return fresh(_call(fn, args, kwargs))
        key = _key(fn, args, kwargs)
        if key in memo:
            _counts["hits"] += 1
        else:
            memo[key] = _call(fn, args, kwargs)
            _counts["misses"] += 1
        return fresh(memo[key])

    return memoised  # type: ignore[return-value]


def cache_enabled() -> bool:
    """`set_cache_enabled`'s setting, else the environment (`KIT_REFERENCE_CACHE=0` turns it off)."""
    if _override is not None:
        return _override
    return os.environ.get(ENV, "1").strip().lower() not in OFF


def set_cache_enabled(enabled: bool | None) -> None:
    """Force the memo on or off in this process; None follows `KIT_REFERENCE_CACHE` again."""
    global _override
    _override = enabled


def clear_cache() -> None:
    """Forget every memoised result and reset the hit and miss counts."""
    for memo in _memos:
        memo.clear()
    _counts.update(hits=0, misses=0)


def cache_stats() -> dict[str, int]:
    """How many calls were served from the memo (hits) and computed (misses) since the last clear."""
    return dict(_counts)


def fresh(value: Any) -> Any:
    """A copy of a reference result that shares nothing mutable with it."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, IMMUTABLE):
        return value
    if isinstance(value, dict):
        out = value.copy()  # keeps the mapping's type (OrderedDict, ...)
        for k in out:
            out[k] = fresh(out[k])
        return out
    if isinstance(value, list):
        return [fresh(v) for v in value]
    if isinstance(value, tuple):
        items = [fresh(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    raise TypeError(f"a @reference function must return data (tensors, numbers, strings, None and "
                    f"lists/tuples/dicts of them), not {type(value).__name__}")


def _call(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """fn(...) with torch's random state forked and seeded to 0: CPU, and CUDA once something initialised it
    (initialising CUDA here would cost CPU-only runs a CUDA context, and fail where the driver is broken)."""
    cuda = torch.cuda.is_initialized()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else []):
        torch.default_generator.manual_seed(0)
        if cuda:
            torch.cuda.manual_seed_all(0)
        return fn(*args, **kwargs)


def _key(fn: Callable[..., Any], args: tuple, kwargs: dict) -> tuple:
    """The arguments and their types (so that 1, 1.0 and True are different calls)."""
    named = tuple(sorted(kwargs.items()))
    for value in (*args, *kwargs.values()):
        _check_hashable(fn, value)
    return args, named, tuple(type(v) for v in args), tuple(type(v) for _, v in named)


def _check_hashable(fn: Callable[..., Any], value: Any) -> None:
    """Keys must compare by value: tensors, modules and functions hash by identity, so they cannot be keys."""
    if isinstance(value, IMMUTABLE):
        return
    if isinstance(value, (tuple, frozenset)):
        for v in value:
            _check_hashable(fn, v)
        return
    if isinstance(value, torch.Tensor) or type(value).__hash__ in (None, object.__hash__):
        raise TypeError(f"@reference {fn.__qualname__}: arguments must be hashable values (seeds, shapes as "
                        f"tuples, flags), not {type(value).__name__}")
