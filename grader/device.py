"""Device checks, the grader's half: what a suite's `device_placement` check calls.

The check runs the student's code on the GPU, or without one on an emulated device (the child's
half, kit.grader.child.device, says how), then asks where outputs, gradients, buffers and
optimizer state ended up. It fails only when the code mixes devices or leaves a tensor off the
device; what the emulation cannot run makes it "not run" (`NotEmulated`), counting towards no
maximum. See docs/authoring.md.
"""
from __future__ import annotations

from typing import Any

import pytest

from .compare import fail
from .remote import Proxy, StudentCodeError, fetch

EMULATED = "meta"


class NotEmulated(pytest.skip.Exception):
    """The emulated device could not run this check here (it needs values the emulation does not have)."""


class OnDevice:
    """One device check's device, in the child: `name` ("cuda", or "meta" when emulated)."""

    def __init__(self, child: Proxy) -> None:
        self.child = child
        self.name: str = fetch(child.device.use())  # from here on the check runs under the device mode

    @property
    def emulated(self) -> bool:
        return self.name == EMULATED

    @property
    def where(self) -> str:
        return "on an emulated GPU" if self.emulated else "on the GPU"

    def randn(self, *shape: int, requires_grad: bool = False, **kwargs: Any) -> Proxy:
        """A float32 tensor of this shape on the device (a leaf that requires grad, if asked)."""
        return self.child.device.randn(*shape, requires_grad=requires_grad, **kwargs)

    def randint(self, high: int, *shape: int) -> Proxy:
        return self.child.device.randint(high, *shape)

    def mask(self, *shape: int, causal: bool = False) -> Proxy:
        """A bool mask on the device (True: not allowed): causal, or the last key masked."""
        return self.child.device.mask(*shape, causal=causal)

    def accepts(self, made: Proxy) -> bool:
        """Whether the student's code could make `made` (a module or optimizer built with an optional feature,
        such as a per-class alpha): a feature it lacks is graded by that feature's checks, not again here."""
        try:
            fetch(self.child.typename(made))
        except StudentCodeError:
            return False
        return True

    def expect(self, what: str, **named: Proxy) -> None:
        """Run what the check recorded; fail if it mixed devices or left any of `named` (tensors, modules,
        optimizers, lists of them) off the device. `what` says what ran ("forward and backward")."""
        try:
            off = fetch(self.child.device.placement(named))
        except StudentCodeError as exc:
            self.classify(exc, what)
            raise
        if off:
            listed = ", ".join(f"{name} ({device})" for name, device in off[:6])
            more = f" and {len(off) - 6} more" if len(off) > 6 else ""
            fail(f"after {what} {self.where}, these are not on the GPU: {listed}{more}. Create tensors on the "
                 "input's device (device=x.device, torch.zeros_like), register tensors a module keeps with "
                 "register_buffer, and update buffers and state in place")

    def classify(self, exc: StudentCodeError, what: str) -> None:
        """Turn the error that stopped the check into its verdict: a device mismatch fails with its
        explanation; on the emulated device, needing values it does not have means "not run"; any other
        error fails the check, as it would on a GPU."""
        failure = fetch(self.child.device.failure())
        kind = failure.get("kind") if isinstance(failure, dict) else None
        message = str(failure.get("message", "")) if isinstance(failure, dict) else ""
        if kind == "mismatch":
            fail(f"{what} {self.where} mixes devices: {message}")
        if self.emulated and kind == "not_emulated":
            raise NotEmulated(f"not run: could not emulate a device here ({message})")
