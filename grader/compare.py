"""Comparing what the student computed with what torch computed, and saying why they differ.

Modelled on `torch.testing.assert_close`: type, shape, dtype and device first, then
NaN/inf positions, then values; a failure says how many elements differ, the worst
absolute and relative error and where. On top of that a check can name known
mistakes (`mistakes={"weight gradient is transposed": ref.weight.grad.T}`): when the
student's value is close to one of them, the message says which.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .remote import CheckFailed

# (rtol, atol) per dtype, as in torch.testing
TOLERANCES = {
    torch.float64: (1e-7, 1e-7),
    torch.float32: (1.3e-6, 1e-5),
    torch.float16: (1e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
    torch.complex128: (1e-7, 1e-7),
    torch.complex64: (1.3e-6, 1e-5),
}


def fail(message: str) -> None:
    """Fail the check with a message meant for the student."""
    raise CheckFailed(message)


def assert_close(actual: Any, expected: Any, *, name: str, rtol: float | None = None,
                 atol: float | None = None, mistakes: Mapping[str, Any] | None = None,
                 check_dtype: bool = True, check_device: bool = True) -> None:
    """Fail with a diagnostic unless `actual` matches `expected` (tensors, numbers or dicts of them)."""
    problem = difference(actual, expected, name=name, rtol=rtol, atol=atol,
                         check_dtype=check_dtype, check_device=check_device)
    if problem is None:
        return
    for cause, wrong in (mistakes or {}).items():
        if difference(actual, wrong, name=name, rtol=rtol, atol=atol, check_dtype=False,
                      check_device=False) is None:
            problem += f"\n  likely cause: {cause}"
            break
    raise CheckFailed(problem)


def difference(actual: Any, expected: Any, *, name: str, rtol: float | None = None, atol: float | None = None,
               check_dtype: bool = True, check_device: bool = True) -> str | None:
    """None when close, else a description of the first difference found."""
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return f"{name}: expected a dict but got {type(actual).__name__}"
        missing = [k for k in expected if k not in actual]
        extra = [k for k in actual if k not in expected]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(map(str, missing))}")
            if extra:
                parts.append(f"unexpected {', '.join(map(str, extra))}")
            return f"{name}: keys differ: {'; '.join(parts)}"
        for key in expected:
            problem = difference(actual[key], expected[key], name=f"{name}[{key!r}]", rtol=rtol, atol=atol,
                                 check_dtype=check_dtype, check_device=check_device)
            if problem:
                return problem
        return None
    if isinstance(expected, (list, tuple)) and not isinstance(expected, torch.Size):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
            return f"{name}: expected a sequence of {len(expected)} items but got {_brief(actual)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            problem = difference(a, e, name=f"{name}[{i}]", rtol=rtol, atol=atol,
                                 check_dtype=check_dtype, check_device=check_device)
            if problem:
                return problem
        return None
    if not isinstance(expected, torch.Tensor):
        if isinstance(expected, (int, float)) and isinstance(actual, (int, float)) and not isinstance(expected, bool):
            expected = torch.tensor(float(expected), dtype=torch.float64)
            actual = torch.tensor(float(actual), dtype=torch.float64)
            check_dtype = False
        elif actual == expected:
            return None
        else:
            return f"{name}: expected {expected!r} but got {_brief(actual)}"
    if not isinstance(actual, torch.Tensor):
        return f"{name}: expected a tensor of shape {tuple(expected.shape)} but got {_brief(actual)}"
    return _tensor_difference(actual, expected, name, rtol, atol, check_dtype, check_device)


def _tensor_difference(actual: torch.Tensor, expected: torch.Tensor, name: str, rtol: float | None,
                       atol: float | None, check_dtype: bool, check_device: bool) -> str | None:
    if actual.shape != expected.shape:
        hint = ""
        if actual.dim() == 2 and actual.shape == expected.shape[::-1]:
            hint = " (transposed?)"
        return f"{name}: shape {tuple(actual.shape)} but expected {tuple(expected.shape)}{hint}"
    if check_dtype and actual.dtype != expected.dtype:
        return f"{name}: dtype {_dtype(actual.dtype)} but expected {_dtype(expected.dtype)}"
    if check_device and actual.device.type != expected.device.type:
        return f"{name}: on device {actual.device} but expected {expected.device}"
    if actual.dtype == torch.bool or not (actual.is_floating_point() or actual.is_complex()):
        mismatch = actual.cpu() != expected.cpu().to(actual.dtype)
        if not mismatch.any():
            return None
        first = tuple(mismatch.nonzero()[0]) if mismatch.dim() else ()
        return (f"{name}: {int(mismatch.sum())} of {mismatch.numel()} elements differ; first at index "
                f"{_index(first) if first else '()'} (got {actual.cpu()[first].item()}, "
                f"expected {expected.cpu()[first].item()})")
    default_rtol, default_atol = TOLERANCES.get(expected.dtype, (1e-7, 1e-7))
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    # compare within the dtype family, as torch.testing does: complex values keep their imaginary part
    wide = torch.complex128 if actual.is_complex() or expected.is_complex() else torch.float64
    a = actual.detach().cpu().to(wide)
    e = expected.detach().cpu().to(wide)
    a_nan, e_nan = a.isnan(), e.isnan()
    if (a_nan & ~e_nan).any():
        count = int((a_nan & ~e_nan).sum())
        where = _index((a_nan & ~e_nan).nonzero()[0]) if a.dim() else "()"
        return f"{name}: {count} NaN value(s) where the expected values are numbers, first at index {where}"
    a_inf, e_inf = a.isinf(), e.isinf()
    if (a_inf != e_inf).any() or (a[a_inf] != e[a_inf]).any():
        where = _index((a_inf != e_inf).nonzero()[0]) if a.dim() and (a_inf != e_inf).any() else "()"
        return f"{name}: infinite values differ from the expected ones, first at index {where}"
    finite = ~(a_nan | e_nan | a_inf)
    magnitude = e.abs()  # float64 for real and complex values alike
    diff = torch.where(finite, (a - e).abs(), torch.zeros_like(magnitude))
    bad = diff > atol + rtol * magnitude
    if not bad.any():
        return None
    worst = int(diff.flatten().argmax())
    at = _unravel(worst, a.shape)
    return (f"{name}: values differ ({_dtype(expected.dtype)}, rtol={rtol:g}, atol={atol:g})\n"
            f"  mismatched elements: {int(bad.sum())} / {bad.numel()} ({100 * float(bad.float().mean()):.1f}%)\n"
            f"  greatest absolute difference: {float(diff.flatten()[worst]):.3g} at index {at} "
            f"(got {_number(a.flatten()[worst])}, expected {_number(e.flatten()[worst])})\n"
            f"  greatest relative difference: {_relative(diff, magnitude, bad, finite)}")


def _number(value: torch.Tensor) -> str:
    x = value.item()
    return f"{x.real:.6g}{x.imag:+.6g}j" if isinstance(x, complex) else f"{x:.6g}"


def _relative(diff: torch.Tensor, e: torch.Tensor, bad: torch.Tensor, finite: torch.Tensor) -> str:
    """The worst |actual - expected| / |expected|, honest where expected is 0 (there it is infinite).

    Dividing by a tiny number instead would print a meaningless 1e+300; so a mismatch at an
    expected 0 is reported as inf, and the finite figure is taken over the other elements.
    """
    zero, nonzero = finite & (e == 0), finite & (e != 0)
    parts = []
    if (bad & zero).any():
        worst = int(torch.where(bad & zero, diff, -1.0).flatten().argmax())
        parts.append(f"inf at index {_unravel(worst, e.shape)} (expected 0)")
    if nonzero.any():
        rel = torch.where(nonzero, diff / e.abs().where(nonzero, torch.ones_like(e)), torch.zeros_like(e))
        worst = int(rel.flatten().argmax())
        text = f"{float(rel.flatten()[worst]):.3g} at index {_unravel(worst, e.shape)}"
        if (zero & (diff > 0)).any():
            text += " (over the elements whose expected value is not 0)"
        parts.append(text)
    return "; ".join(parts)


def _unravel(flat: int, shape: torch.Size) -> str:
    index = []
    for size in reversed(shape):
        index.append(flat % size)
        flat //= size
    return _index(reversed(index))


def _index(values) -> str:
    values = [int(v) for v in values]
    return "(" + ", ".join(map(str, values)) + ("," if len(values) == 1 else "") + ")"


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _brief(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 40 else text[:37] + '...'}"
