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

`kit check` also keeps the results of public checks on disk (`persisted`), so a student's
next run loads them instead of running torch again.

`KIT_REFERENCE_CACHE=0` (read at every call) or `set_cache_enabled(False)` turns the
memo and the disk store off, to show that they change no grade.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch

from .files import user_cache

ENV = "KIT_REFERENCE_CACHE"
OFF = ("0", "false", "no", "off")
Fn = TypeVar("Fn", bound=Callable[..., Any])
IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device, torch.Size)

STORE_FORMAT = b"kit-references-1"  # part of every store's name: change it when keys or values change

_memos: list[dict] = []
_override: bool | None = None
_counts = {"hits": 0, "misses": 0, "loaded": 0}
_store: dict[str, Any] | None = None  # what `persisted` loaded and will save, by function name and arguments
_names: dict[str, int] = {}  # how many @reference functions have each module.qualname (one: it can be stored)


def reference(fn: Fn) -> Fn:
    """Memoise `fn` (arguments hashable by value; result: tensors, numbers, strings, None and
    lists/tuples/dicts of them). Each call returns a copy of the result."""
    memo: dict = {}
    _memos.append(memo)
    name = _name(fn)
    _names[name] = _names.get(name, 0) + 1

    @functools.wraps(fn)
    def memoised(*args: Any, **kwargs: Any) -> Any:
        if not cache_enabled():
            return fresh(_call(fn, args, kwargs))
        key = _key(fn, args, kwargs)
        if key in memo:
            _counts["hits"] += 1
        else:
            memo[key] = _load_or_call(fn, name, args, kwargs, key)
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
    """Forget every memoised result and reset the counts."""
    for memo in _memos:
        memo.clear()
    _counts.update(hits=0, misses=0, loaded=0)


def cache_stats() -> dict[str, int]:
    """Calls served from the memo (hits), computed (misses) and read from the disk store (loaded),
    since the last clear."""
    return dict(_counts)


@contextlib.contextmanager
def persisted(path: Path | None) -> Iterator[None]:
    """Keep the results computed in this block in `path`, and use the ones already there (None: do neither).

    For a student's repeated `kit check`: public references are the same on every run of
    the same suite with the same torch, and computing them is much of a check's start-up
    (torch.optim.Adam imports torch._dynamo, nn.MultiheadAttention sympy). Never for hidden
    checks, whose inputs must not leave the grader. The file is read with weights_only=True
    (it cannot run code; one that does not load is ignored) and holds only plain data:
    CPU tensors, numbers, strings, and lists, tuples and dicts of them.
    """
    global _store
    if path is None or not cache_enabled():
        yield
        return
    _store = _read_store(path)
    known = len(_store)
    try:
        yield
    finally:
        store, _store = _store, None
        if len(store) > known:
            _write_store(path, store)


def store_path(suite_dir: Path) -> Path | None:
    """`persisted`'s file for the suite in `suite_dir`: named after its files' contents and torch's version,
    in kit's user cache (None without a home folder)."""
    digest = hashlib.sha256(STORE_FORMAT + torch.__version__.encode())
    for path in sorted(suite_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(f"\0{path.relative_to(suite_dir)}\0".encode() + path.read_bytes())
    cache = user_cache()
    return cache / "references" / f"{suite_dir.name}-{digest.hexdigest()[:16]}.pt" if cache else None


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


def _load_or_call(fn: Callable[..., Any], name: str, args: tuple, kwargs: dict, key: tuple) -> Any:
    """fn's result from the disk store if `persisted` has it, else computed (and added to the store)."""
    entry = f"{name}{key!r}"
    if _store is not None and entry in _store:
        _counts["loaded"] += 1
        return _store[entry]
    value = _call(fn, args, kwargs)
    _counts["misses"] += 1
    if _store is not None and _names[name] == 1 and _plain(value):
        _store[entry] = value
    return value


def _name(fn: Callable[..., Any]) -> str:
    """What names fn's results in the disk store (functions made by a factory share one: never stored)."""
    return f"{fn.__module__}.{fn.__qualname__}"


def _plain(value: Any) -> bool:
    """Data that torch.load(weights_only=True) gives back as it was (no namedtuples, no CUDA tensors)."""
    if type(value) in (torch.Tensor, torch.nn.Parameter):
        return value.device.type == "cpu" and value.layout == torch.strided
    if type(value) in (list, tuple):
        return all(_plain(v) for v in value)
    if type(value) in (dict, OrderedDict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return isinstance(value, IMMUTABLE)


def _read_store(path: Path) -> dict[str, Any]:
    try:
        store = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - missing, unreadable, or not what we wrote: compute everything again
        return {}
    return store if isinstance(store, dict) else {}


def _write_store(path: Path, store: dict[str, Any]) -> None:
    """Write atomically, and remove this suite's stores from before the suite or torch changed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        torch.save(store, temporary)
        os.replace(temporary, path)
        suite = path.name.rsplit("-", 1)[0]
        for old in path.parent.glob(f"{suite}-*.pt"):
            if old != path and old.name.rsplit("-", 1)[0] == suite:
                old.unlink(missing_ok=True)
    except OSError:  # a read-only or full home: checks still run, just without the store
        pass


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
