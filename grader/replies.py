"""The child's replies, checked against a strict schema before any grader code reads them.

A reply is untrusted data: wire.py guarantees it is made of plain values, this module that
it has the expected fields and no others (an error's location and operands may be left out),
with the expected types, and it cuts every text to the length the grader keeps. A reply that
does not fit is treated like garbage on the pipe.
"""
from __future__ import annotations

import re
from typing import Any

MAX_OUTPUT = 20_000  # characters of what the student's code printed, per reply
MAX_TEXT = {"message": 2000, "traceback": 4000, "where": 200, "type": 100}
MAX_SOURCE = 500  # characters of the line of source an error points at
MAX_OPERANDS, MAX_DIMS = 8, 16
SHA256 = re.compile(r"[0-9a-f]{64}")


class BadReply(ValueError):
    """A reply that does not fit the protocol."""


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise BadReply(f"{name} is not text")
    return value[:limit]


def _names(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or len(value) > 100:
        raise BadReply(f"{name} is not a short list")
    return [_text(v, name, 200) for v in value]


def _fields(reply: Any, keys: set[str], optional: frozenset[str] = frozenset()) -> dict:
    if not isinstance(reply, dict) or not keys <= set(reply) <= keys | optional:
        raise BadReply(f"expected the fields {sorted(keys)}" + (f" (and maybe {sorted(optional)})" if optional else ""))
    return reply


def _int(value: Any, name: str, *, none: bool = False) -> int | None:
    if none and value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 31:
        raise BadReply(f"{name} is not a small whole number")
    return value


def _location(value: Any) -> dict | None:
    """Where an error is in the student's files: a relative file name, a line, columns, the line of source."""
    if value is None:
        return None
    loc = _fields(value, {"file", "line", "column", "end_column", "source"})
    file = _text(loc["file"], "error.location.file", 500)
    if not inside(file):
        return None
    return {"file": file, "line": _int(loc["line"], "error.location.line"),
            "column": _int(loc["column"], "error.location.column", none=True),
            "end_column": _int(loc["end_column"], "error.location.end_column", none=True),
            "source": _text(loc["source"], "error.location.source", MAX_SOURCE)}


def _operands(value: Any) -> list[dict]:
    """The values a check's own failed step worked on: names in the student's terms, shapes, dtypes."""
    if not isinstance(value, list) or len(value) > MAX_OPERANDS:
        raise BadReply("error.operands is not a short list")
    out = []
    for o in value:
        o = _fields(o, {"name", "derived", "shape", "dtype", "type"})
        shape = o["shape"]
        if shape is not None and (not isinstance(shape, list) or len(shape) > MAX_DIMS):
            raise BadReply("error.operands.shape is not a short list")
        out.append({"name": _text(o["name"], "error.operands.name", MAX_TEXT["where"]),
                    "derived": _flag(o["derived"], "error.operands.derived"),
                    "shape": None if shape is None else [_int(n, "error.operands.shape") for n in shape],
                    "dtype": _text(o["dtype"], "error.operands.dtype", 40),
                    "type": _text(o["type"], "error.operands.type", MAX_TEXT["type"])})
    return out


def _error(value: Any) -> dict | None:
    if value is None:
        return None
    e = _fields(value, {"op", "fetch", "type", "types", "message", "traceback", "where"},
                frozenset({"location", "step", "operands"}))
    for key in ("op", "fetch"):
        if e[key] is not None and (not isinstance(e[key], int) or isinstance(e[key], bool)):
            raise BadReply(f"error.{key} is not an index")
    return {"op": e["op"], "fetch": e["fetch"], "types": _names(e["types"], "error.types"),
            **{key: _text(e[key], f"error.{key}", limit) for key, limit in MAX_TEXT.items()},
            "location": _location(e.get("location")), "step": _flag(e.get("step", False), "error.step"),
            "operands": _operands(e.get("operands", []))}


def inside(path: str) -> bool:
    """Whether `path` is a plain relative file name: no root, drive, `..` or empty part.

    The grader reads the files the child says it imported (the forbidden-API scan), so any other
    name is dropped here; where a plain name leads on disk (links) is checked before it is read
    (kit.grader.files.within)."""
    parts = re.split(r"[/\\]", path)
    return 0 < len(path) <= 500 and ":" not in path and all(p not in ("", ".", "..") for p in parts)


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise BadReply(f"{name} is not true or false")
    return value


def hello(reply: Any) -> dict:
    """The child's first message: whether the student's module imported, and what it did meanwhile."""
    r = _fields(reply, {"ready", "error", "output", "forbidden", "cuda", "imported"})
    imported = r["imported"]
    if not isinstance(imported, list) or len(imported) > 1000 or not all(
            isinstance(i, list) and len(i) == 2 and all(isinstance(s, str) for s in i) for i in imported):
        raise BadReply("imported is not a list of [file, sha256]")
    out = {"ready": _flag(r["ready"], "ready"), "error": _error(r["error"]),
           "output": _text(r["output"], "output", MAX_OUTPUT), "forbidden": _names(r["forbidden"], "forbidden"),
           "cuda": _flag(r["cuda"], "cuda"),
           "imported": [(f, h) for f, h in imported if inside(f) and SHA256.fullmatch(h)]}
    if out["ready"] == (out["error"] is not None):
        raise BadReply("a hello is either ready or has an error")
    return out


def batch(reply: Any, ops: int, fetched: int) -> dict:
    """The answer to a batch of `ops` operations: `fetched` values, or the error that stopped it."""
    r = _fields(reply, {"values", "error", "output", "forbidden"})
    error = _error(r["error"])
    if error is not None and not (error["op"] is None or 0 <= error["op"] < ops):
        raise BadReply("error.op names no operation of this batch")
    values = r["values"]
    if not isinstance(values, list) or len(values) != (0 if error else fetched):
        raise BadReply("the number of values does not match what was asked")
    return {"values": values, "error": error, "output": _text(r["output"], "output", MAX_OUTPUT),
            "forbidden": _names(r["forbidden"], "forbidden")}
