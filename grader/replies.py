"""The child's replies, checked against a strict schema before any grader code reads them.

A reply is untrusted data: wire.py guarantees it is made of plain values, this module that
it has exactly the expected fields with the expected types, and it cuts every text to the
length the grader keeps. A reply that does not fit is treated like garbage on the pipe.
"""
from __future__ import annotations

import re
from typing import Any

MAX_OUTPUT = 20_000  # characters of what the student's code printed, per reply
MAX_TEXT = {"message": 2000, "traceback": 4000, "where": 200, "type": 100}
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


def _fields(reply: Any, keys: set[str]) -> dict:
    if not isinstance(reply, dict) or set(reply) != keys:
        raise BadReply(f"expected the fields {sorted(keys)}")
    return reply


def _error(value: Any) -> dict | None:
    if value is None:
        return None
    e = _fields(value, {"op", "fetch", "type", "types", "message", "traceback", "where"})
    for key in ("op", "fetch"):
        if e[key] is not None and (not isinstance(e[key], int) or isinstance(e[key], bool)):
            raise BadReply(f"error.{key} is not an index")
    return {"op": e["op"], "fetch": e["fetch"], "types": _names(e["types"], "error.types"),
            **{key: _text(e[key], f"error.{key}", limit) for key, limit in MAX_TEXT.items()}}


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
