"""The data-only codec between the grader and the child (kit.grader.child.wire), at its limits.

Everything here is what a hostile child could write on its reply pipe: each message is built
by hand, as JSON plus raw bytes, and must either decode into plain data or be refused with a
WireError (or a TimeoutError at the deadline), quickly, whatever it claims.
"""
from __future__ import annotations

import json
import os
import time

import pytest
import torch

from kit.grader.child import wire
from kit.grader.child.wire import WireError, clean_text, decode, encode


def roundtrip(value, **kwargs):
    data = encode(value)
    head, size = wire.FRAME.unpack(data[:wire.FRAME.size])
    header = data[wire.FRAME.size:wire.FRAME.size + head]
    return decode(header, data[wire.FRAME.size + head:], **kwargs)


def forged(tree, blob: bytes = b"", **kwargs):
    """Decode a hand-made message: a JSON header (a tree, or bytes as they are) and its tensor bytes."""
    header = tree if isinstance(tree, bytes) else json.dumps(tree).encode()
    return decode(header, blob, **kwargs)


def tensor_node(dtype="float64", shape=(2,), device="cpu", span=(0, 16)):
    return {"T": [dtype, list(shape), device, list(span) if span is not None else None]}


# -- what comes out is plain data ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", wire.DTYPES)
def test_every_dtype_roundtrips_as_a_plain_tensor(dtype):
    t = (torch.arange(6, dtype=torch.float64).reshape(2, 3) - 2).to(getattr(torch, dtype))
    got = roundtrip({"x": t, "nested": [t.T, (t[:, ::2],)]})
    for value, want in ((got["x"], t), (got["nested"][0], t.T), (got["nested"][1][0], t[:, ::2])):
        assert type(value) is torch.Tensor and value.__dict__ == {}
        assert value.dtype == want.dtype and value.shape == want.shape and value.is_contiguous()
        assert not value.requires_grad and torch.equal(value, want)


class Disguised(torch.Tensor):
    pass


def test_subclasses_attributes_views_and_lazy_flags_are_not_carried():
    base = torch.tensor([1.0, -2.0, 3.0], requires_grad=True) * 2
    fake = base.as_subclass(Disguised)
    fake.is_floating_point = lambda: False
    fake.shape_claim = (999,)
    got = roundtrip([fake, torch.tensor([1 + 2j]).conj(), torch.tensor([1.0, 2.0])._neg_view(),
                     torch.zeros(()).expand(3, 4), torch.empty(5, 7, device="meta")])
    assert [type(t) for t in got] == [torch.Tensor] * 5
    assert got[0].__dict__ == {} and got[0].is_floating_point() and torch.equal(got[0], base.detach())
    assert torch.equal(got[1], torch.tensor([1 - 2j])) and not got[1].is_conj()
    assert torch.equal(got[2], torch.tensor([-1.0, -2.0])) and not got[2].is_neg()
    assert got[3].stride() == (4, 1)  # dense: 12 elements really sent
    assert got[4].device.type == "meta" and got[4].shape == (5, 7)


def test_received_tensors_own_their_memory():
    blob = bytearray(torch.tensor([1.0, 2.0], dtype=torch.float64).numpy().tobytes())
    t = forged(tensor_node(), bytes(blob))
    blob[:] = b"\0" * len(blob)
    t.add_(1)  # writable, and its own
    assert t.tolist() == [2.0, 3.0]


def test_a_reply_carries_data_only():
    for value in (wire.Ref(1), slice(1, 2), Ellipsis, [wire.Ref(0)], {"k": slice(None)}):
        with pytest.raises(WireError, match="a reply carries data only"):
            roundtrip(value)
        assert roundtrip(value, requests=True) == value  # the grader's requests may hold them


# -- tensors: shapes, sizes, dtypes, devices ----------------------------------------------------------------

@pytest.mark.parametrize("node, blob, match", [
    (tensor_node(shape=(500_000_000,), dtype="float32", span=(0, 4)), b"\0" * 4, "larger than one message"),
    (tensor_node(shape=(0, 2**70)), b"", "larger than one message"),
    (tensor_node(shape=(0, 2**40, 2**40)), b"", "larger than one message"),
    (tensor_node(shape=(2**40,), device="meta", span=None), b"", "larger than one message"),
    (tensor_node(shape=(4096, 4096, 4), device="meta", span=None), b"", "more tensor elements"),
    (tensor_node(shape=(3,)), b"\0" * 16, "needs 24 bytes, not 16"),
    (tensor_node(shape=(2,), span=(8, 16)), b"\0" * 16, "outside the message"),
    (tensor_node(shape=(-2,)), b"", "malformed tensor shape"),
    (tensor_node(shape=(2.5,)), b"", "malformed"),
    (tensor_node(shape=[True]), b"", "malformed"),
    (tensor_node(shape=[1] * 40), b"\0" * 8, "malformed tensor shape"),
    (tensor_node(dtype="object"), b"\0" * 16, "is not sent"),
    (tensor_node(dtype="float8_e4m3fn"), b"\0" * 16, "is not sent"),
    (tensor_node(dtype="bool", shape=(2,), span=(0, 2)), b"\x02\x05", "values other than 0 and 1"),
    (tensor_node(device="gpu"), b"\0" * 16, "malformed device"),
    (tensor_node(device="cpu; rm -rf /"), b"\0" * 16, "malformed device"),
    (tensor_node(device="meta"), b"\0" * 16, "carries no data"),
    ({"T": ["float64", [2], "cpu", [0, 16]], "__dict__": {"d": [["is_floating_point", False]]}}, b"\0" * 16,
     "malformed message"),
    ({"T": ["float64", [2], "cpu", [0, 16], {"d": [["is_floating_point", False]]}]}, b"\0" * 16, "malformed message"),
])
def test_a_tensor_is_exactly_what_its_bytes_hold(node, blob, match):
    with pytest.raises(WireError, match=match):  # refused before anything is allocated for the claim
        forged({"l": [node]}, blob)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA tensor is a tensor like any other here")
def test_a_tensor_on_a_device_this_grader_lacks_is_refused_not_an_error():
    with pytest.raises(WireError, match="a device this grader does not have"):
        forged(tensor_node(device="cuda:0"), b"\0" * 16)


def test_elements_are_counted_per_message():
    one = tensor_node(dtype="uint8", shape=(1000,), span=(0, 1000))
    assert len(forged({"l": [one] * 3}, b"\0" * 1000, max_elements=3000)) == 3
    with pytest.raises(WireError, match="more tensor elements"):
        forged({"l": [one] * 4}, b"\0" * 1000, max_elements=3000)


def test_the_encoder_refuses_before_making_anything_dense():
    huge = torch.zeros((), dtype=torch.float64).expand(500_000_000)  # 4 GB once dense
    with pytest.raises(WireError, match=r"a tensor of shape \(500000000,\) \(more than"):
        encode({"values": [huge]})
    for value, match in ((torch.zeros(3).to_sparse(), "not plain data"), (torch.zeros(2, dtype=torch.uint16),
                                                                          "not sent"),
                         (object(), "not data"), ({(1, 2): 0}, "dictionary key"), ({1.5: 0}, "dictionary key"),
                         ({2**40: 0}, "dictionary key"), ({True: 0}, "dictionary key")):
        with pytest.raises(WireError, match=match):
            encode(value)


# -- structure: keys, depth, size, time -----------------------------------------------------------------------

@pytest.mark.parametrize("key", [2**61 - 1, -(2**31), 2**31, 1.5, True, None, [1], {"d": []}])
def test_dictionary_keys_are_strings_or_small_integers(key):
    with pytest.raises(WireError, match="keys must be strings or small integers"):
        forged({"d": [[key, 0]]})


def test_keys_that_would_collide_are_refused_at_once():
    """Multiples of 2**61 - 1 all hash to 0 in CPython: as keys of a dict they take quadratic time."""
    pairs = ",".join(f"[{k * (2**61 - 1)},0]" for k in range(1, 200_001)).encode()
    with pytest.raises(WireError, match="keys must be strings or small integers"):  # at the first key
        forged(b'{"d":[' + pairs + b"]}")
    assert forged({"d": [[k, k] for k in range(-1000, 1000)] + [["a", 1], ["é", 2]]})[-1000] == -1000


def test_nesting_is_capped():
    assert forged(json.loads('{"l":[' * wire.MAX_DEPTH + "0" + "]}" * wire.MAX_DEPTH)) is not None
    with pytest.raises(WireError, match="nested more than"):
        forged(json.loads('{"l":[' * (wire.MAX_DEPTH + 1) + "0" + "]}" * (wire.MAX_DEPTH + 1)))
    with pytest.raises(WireError):  # too deep for the JSON parser itself
        forged(b'{"l":[' * 100_000 + b"0" + b"]}" * 100_000)
    with pytest.raises(WireError):
        forged(b"[" * 1_000_000)


def test_size_is_capped_in_values():
    with pytest.raises(WireError, match="values in one message"):
        forged(b'{"l":[' + b",".join([b"0"] * (wire.MAX_NODES + 1)) + b"]}")


def test_decoding_is_under_the_deadline():
    header = b'{"l":[' + b",".join([b'{"t":[1,2]}'] * 20_000) + b"]}"
    with pytest.raises(TimeoutError):
        forged(header, deadline=time.monotonic())
    assert len(forged(header, deadline=time.monotonic() + 60)) == 20_000


def test_a_frame_claiming_too_much_is_refused_before_reading_it():
    r, w = os.pipe()
    try:
        os.write(w, wire.FRAME.pack(wire.MAX_MESSAGE, 1))  # the claim alone is refused: nothing more is read
        with pytest.raises(WireError, match="over the"):
            wire.read_message(r, deadline=time.monotonic() + 5)
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("header", [b"not json", b'{"x": 1, "y": 2}', b'{"zz": 1}', b'{"c": [1]}', b'{"c": ["a", 1]}',
                                    b'{"r": "1"}', b'{"dt": "float128"}', b'{"dv": 5}', b'{"d": [[1]]}',
                                    b"[" + b"9" * 5000 + b"]", b'{"b": [0, 10]}'])
def test_malformed_messages_are_wire_errors(header):
    with pytest.raises(WireError):
        forged(header, requests=True)


# -- text --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("\x1b[2J\x1b[Hscore: 20 / 20\x1b[0m", "score: 20 / 20"),
    ("\x1b]0;title\x07rest", "0;titlerest"),
    ("a\x9b2Jb\x90c", "a2Jbc"),
    ("line 1\r\nline 2\rover\x08\x00", "line 1\nline 2over"),
    ("tab\tnew\nline é→✓ 漢字", "tab\tnew\nline é→✓ 漢字"),
    ("lone \ud800 and \udfff", "lone ? and ?"),
])
def test_strings_are_clean_utf8_without_control_characters(text, want):
    assert clean_text(text) == want
    got = forged({"d": [["message", text]]})["message"]
    assert got == want and got.encode("utf-8")


def test_text_that_is_not_utf8_on_the_wire_is_replaced():
    got = forged(b'{"l":["\xed\xa0\x80 \xff ok"]}')
    assert got[0].encode("utf-8") and got[0].endswith(" ok")
    assert list(forged(b'{"d":[["\\ud800\\u001b[2J",1]]}')) == ["?"]  # keys are text like any other
