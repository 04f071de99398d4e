"""The messages between the grader and the child: framing, and a codec that can only carry data.

Both sides import this file (the child as `child.wire`, the grader as `kit.grader.child.wire`).
A message is a JSON header describing a tree of plain values plus one block of raw tensor
bytes. Decoding builds every value itself, so nothing the child sends can run code, carry
attributes or a subclass, share storage, pretend to be larger than it is, or take more than
linear time to read:

- tensors are rebuilt from their dense bytes as fresh, plain tensors of an allowed dtype
  (`numel * itemsize` must equal the bytes sent; the elements of one message and every
  dimension are capped, so nothing is computed on a shape before it is known to be small;
  a bool is a 0 or a 1; a tensor on a device this process lacks is refused, not an error);
- dictionary keys are strings or small integers (no crafted hash collisions), structures
  are capped in depth and size, and decoding checks its deadline as it goes;
- handles on objects in the child (`Ref`), slices and Ellipsis only travel in the grader's
  requests: a reply (`requests=False`) holds data and nothing else;
- strings are valid UTF-8 with no control characters except newline and tab, so a reply
  cannot move a terminal's cursor or break a feedback page.
"""
from __future__ import annotations

import json
import os
import re
import select
import struct
import time
from dataclasses import dataclass
from typing import Any

FRAME = struct.Struct("<QQ")  # header bytes, tensor bytes
MAX_MESSAGE = 64 << 20  # a reply larger than this is not data a check asked for
MAX_ELEMENTS = 8 << 20  # tensor elements in one message (the most a check of hw1-hw6 fetches at once: 648,458)
MAX_NODES = 1 << 20  # values in one message
MAX_DEPTH = 32
MAX_KEY = 1 << 31  # integer keys stay below this (their hashes cannot be made to collide)
DTYPES = ("float64", "float32", "float16", "bfloat16", "complex128", "complex64", "int64", "int32", "int16",
          "int8", "uint8", "bool")
DEVICE = re.compile(r"(cpu|meta|cuda)(:[0-9]{1,2})?")
# C0 and C1 controls but newline and tab, lone surrogates, and ANSI escape sequences
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class ChannelClosed(Exception):
    """The other side closed its end."""


class WireError(ValueError):
    """A message that is not data this protocol carries (malformed, too large, a forbidden type)."""


@dataclass(frozen=True)
class Ref:
    """A handle on an object that lives in the child (sent by the grader, resolved by the child)."""

    handle: int


def clean_text(text: str) -> str:
    """`text` as valid UTF-8 with no terminal escapes or control characters but newline and tab."""
    if text.isascii():
        if text.isprintable():  # most strings (names, keys): nothing to remove, found in C
            return text
    else:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return _CONTROL.sub("", _ESCAPE.sub("", text))


# -- encoding ------------------------------------------------------------------------------------

class _Encoder:
    def __init__(self) -> None:
        self.blobs: list[bytes] = []
        self.size = 0
        self.elements = 0

    def node(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise WireError(f"a structure nested more than {MAX_DEPTH} levels deep")
        # most values of a message: plain data and containers (a torch.Size is a tuple: sent as one)
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, float)):
            return int(value) if isinstance(value, int) else float(value)
        if isinstance(value, tuple):
            return {"t": [self.node(v, depth + 1) for v in value]}
        if isinstance(value, list):
            return {"l": [self.node(v, depth + 1) for v in value]}
        if isinstance(value, dict):
            return {"d": [[self.key(k), self.node(v, depth + 1)] for k, v in value.items()]}
        import torch

        if isinstance(value, torch.Tensor):
            return {"T": self.tensor(value)}
        if isinstance(value, complex):
            return {"c": [value.real, value.imag]}
        if isinstance(value, Ref):
            return {"r": value.handle}
        if isinstance(value, torch.dtype):
            return {"dt": str(value).removeprefix("torch.")}
        if isinstance(value, torch.device):
            return {"dv": str(value)}
        if isinstance(value, slice):
            return {"s": [self.node(value.start), self.node(value.stop), self.node(value.step)]}
        if value is Ellipsis:
            return {"e": 0}
        if isinstance(value, bytes):
            return {"b": self.blob(value)}
        raise WireError(f"a {type(value).__qualname__} object is not data")

    def key(self, key: Any) -> str | int:
        if isinstance(key, str) or (type(key) is int and -MAX_KEY < key < MAX_KEY):
            return key
        raise WireError(f"a dictionary key {type(key).__qualname__} {str(key)[:40]!r} is not sent "
                        "(keys are strings or small integers)")

    def tensor(self, t) -> list:
        import torch

        if t.layout != torch.strided or t.is_quantized or getattr(t, "is_nested", False):
            raise WireError(f"a {t.layout} tensor is not plain data (send a dense one)")
        t = t.detach()
        self.elements += t.numel()  # before anything is computed: a stride-0 tensor may be huge once dense
        if self.elements > MAX_ELEMENTS:
            raise WireError(f"a tensor of shape {tuple(t.shape)} (more than {MAX_ELEMENTS} tensor elements in "
                            "one message)")
        dtype = str(t.dtype).removeprefix("torch.")
        if dtype not in DTYPES:
            raise WireError(f"a tensor of dtype {dtype} is not sent")
        if t.device.type == "meta":
            return [dtype, list(t.shape), "meta", None]
        data = t.resolve_conj().resolve_neg().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        return [dtype, list(t.shape), str(t.device), self.blob(data)]

    def blob(self, data: bytes) -> list[int]:
        start = self.size
        self.blobs.append(data)
        self.size += len(data)
        return [start, len(data)]


def encode(value: Any) -> bytes:
    """`value` (plain data, tensors and `Ref`s) as one framed message."""
    enc = _Encoder()
    header = json.dumps(enc.node(value), ensure_ascii=False, allow_nan=True,
                        separators=(",", ":")).encode("utf-8", "surrogatepass")
    return FRAME.pack(len(header), enc.size) + header + b"".join(enc.blobs)


# -- decoding ------------------------------------------------------------------------------------

REQUEST_TAGS = frozenset({"r", "s", "e"})  # only the grader's requests carry these


class _Decoder:
    def __init__(self, blob: bytes, deadline: float | None, max_elements: int, requests: bool) -> None:
        self.blob, self.deadline = blob, deadline
        self.nodes = 0
        self.elements_left = max_elements
        self.requests = requests

    def node(self, node: Any, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise WireError(f"more than {MAX_NODES} values in one message")
        if self.nodes % 4096 == 0 and self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeoutError
        if depth > MAX_DEPTH:
            raise WireError(f"a structure nested more than {MAX_DEPTH} levels deep")
        if node is None or isinstance(node, (bool, int, float)):
            return node
        if isinstance(node, str):
            return clean_text(node)
        if not isinstance(node, dict) or len(node) != 1:
            raise WireError("malformed message")
        ((tag, body),) = node.items()
        if tag in REQUEST_TAGS and not self.requests:
            raise WireError(f"a reply carries data only, not {_TAG_NAMES[tag]}")
        if tag in ("l", "t"):
            items = [self.node(v, depth + 1) for v in _list(body)]
            return items if tag == "l" else tuple(items)
        if tag == "d":
            out = {}
            for pair in _list(body):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise WireError("malformed dictionary")
                out[self.key(pair[0])] = self.node(pair[1], depth + 1)
            return out
        if tag == "T":
            return self.tensor(body)
        if tag == "c":
            re_, im = _list(body, 2)
            return complex(_number(re_), _number(im))
        if tag == "r":
            return Ref(_int(body))
        if tag == "dt":
            return _dtype(body)
        if tag == "dv":
            import torch

            if not isinstance(body, str) or not DEVICE.fullmatch(body):
                raise WireError("malformed device")
            return torch.device(body)
        if tag == "s":
            start, stop, step = (self.node(v, depth + 1) for v in _list(body, 3))
            return slice(start, stop, step)
        if tag == "e":
            return Ellipsis
        if tag == "b":
            start, size = self.span(body)
            return self.blob[start:start + size]
        raise WireError(f"unknown value type {tag!r}")

    def key(self, node: Any) -> str | int:
        if isinstance(node, str):
            return clean_text(node)
        if type(node) is int and -MAX_KEY < node < MAX_KEY:
            return node
        raise WireError("dictionary keys must be strings or small integers")

    def span(self, body: Any) -> tuple[int, int]:
        start, size = (_int(v) for v in _list(body, 2))
        if start < 0 or size < 0 or start + size > len(self.blob):
            raise WireError("a value points outside the message")
        return start, size

    def tensor(self, body: Any):
        import torch

        dtype_name, shape, device, span = _list(body, 4)
        dtype = _dtype(dtype_name)
        shape = [_int(s) for s in _list(shape)]
        if len(shape) > MAX_DEPTH or any(s < 0 for s in shape):
            raise WireError("malformed tensor shape")
        if any(s > MAX_ELEMENTS for s in shape):  # even with no elements: no shape arithmetic on huge numbers
            raise WireError(f"a tensor of shape {tuple(shape)} is larger than one message may carry")
        numel = 1
        for s in shape:
            numel *= s
        self.elements_left -= numel
        if self.elements_left < 0:
            raise WireError("more tensor elements than one message may carry")
        if not isinstance(device, str) or not DEVICE.fullmatch(device):
            raise WireError("malformed device")
        if device == "meta":
            if span is not None:
                raise WireError("a meta tensor carries no data")
            return torch.empty(shape, dtype=dtype, device="meta")
        start, size = self.span(span)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if size != numel * itemsize:
            raise WireError(f"a tensor of shape {tuple(shape)} needs {numel * itemsize} bytes, not {size}")
        if numel == 0:
            out = torch.empty(shape, dtype=dtype)
        else:
            data = bytearray(self.blob[start:start + size])  # a copy: the tensor owns its memory
            if dtype == torch.bool and data.translate(None, b"\0\1"):  # a byte that is neither 0 nor 1
                raise WireError("a bool tensor holds values other than 0 and 1")
            out = torch.frombuffer(data, dtype=torch.uint8).view(dtype).reshape(shape)
        if device == "cpu":
            return out
        try:
            return out.to(device)
        except (RuntimeError, AssertionError) as exc:  # no such device here (no CUDA, an ordinal too high)
            raise WireError(f"a tensor on {device}, a device this grader does not have") from exc


_TAG_NAMES = {"r": "a handle on an object", "s": "a slice", "e": "Ellipsis"}


def _list(body: Any, length: int | None = None) -> list:
    if not isinstance(body, list) or (length is not None and len(body) != length):
        raise WireError("malformed message")
    return body


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError("malformed message")
    return value


def _number(value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise WireError("malformed message")
    return float(value)


def _dtype(name: Any):
    import torch

    if name not in DTYPES:
        raise WireError(f"dtype {name!r} is not sent")
    return getattr(torch, name)


def decode(header: bytes, blob: bytes, *, deadline: float | None = None, max_elements: int = MAX_ELEMENTS,
           requests: bool = False) -> Any:
    """The value a message carries, built from scratch; WireError when it is not plain data.

    `requests`: the message is one of the grader's requests, which may hold `Ref`s, slices and
    Ellipsis; anything else (a reply) holds data only.
    """
    try:
        tree = json.loads(header.decode("utf-8", "replace"))
    except (ValueError, RecursionError) as exc:
        raise WireError(f"malformed message ({type(exc).__name__})") from None
    try:
        return _Decoder(blob, deadline, max_elements, requests).node(tree)
    except RecursionError:
        raise WireError("a structure nested too deeply") from None


# -- framing ---------------------------------------------------------------------------------------

def read_exact(fd: int, n: int, deadline: float | None = None) -> bytes:
    """Read n bytes from fd; with a deadline, raise TimeoutError when it passes."""
    chunks, left = [], n
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise ChannelClosed
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int, deadline: float | None = None, *, requests: bool = False) -> Any:
    """One message from `fd`, read and decoded within `deadline` (a time.monotonic() value).

    `requests=True` on the child's side only (see `decode`)."""
    head, size = FRAME.unpack(read_exact(fd, FRAME.size, deadline))
    if head + size > MAX_MESSAGE:
        raise WireError(f"a message of {head + size} bytes is over the {MAX_MESSAGE} byte limit")
    header = read_exact(fd, head, deadline)
    return decode(header, read_exact(fd, size, deadline), deadline=deadline, requests=requests)


def write_message(fd: int, value: Any) -> None:
    view = memoryview(encode(value))
    while view:
        view = view[os.write(fd, view):]
