"""hw9: stochastic gradient descent with momentum, computed exactly as torch.optim.SGD does."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer


class SGDMomentum(Optimizer):
    """SGD with (optionally dampened or Nesterov) momentum, L2 weight decay and maximize.

    A drop-in for torch.optim.SGD. Subclassing Optimizer gives param groups, `state`,
    `state_dict`/`load_state_dict`, `zero_grad` and learning-rate schedulers; only `step`
    is SGD itself. With momentum, `self.state[p]["momentum_buffer"]` holds the velocity
    of p, the name torch.optim.SGD uses.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        # Optimizer fills each param group's missing hyperparameters from `defaults`.
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; return the closure's loss, if any.

        The closure re-evaluates the model, so it runs with gradients enabled even though
        the update itself must not be recorded by autograd.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            momentum, dampening = group["momentum"], group["dampening"]
            for p in group["params"]:
                if p.grad is None:
                    continue  # untouched: no update and no state, as in torch
                # new tensors from here on: p.grad stays what the caller set
                grad = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])  # L2, before momentum
                if momentum != 0:
                    state = self.state[p]
                    first = "momentum_buffer" not in state
                    if first:
                        state["momentum_buffer"] = torch.zeros(p.shape, dtype=p.dtype)
                    buf = state["momentum_buffer"]
                    # zeros at first: the first update makes it the gradient itself (no dampening)
                    buf.mul_(momentum).add_(grad, alpha=1 if first else 1 - dampening)
                    grad = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
                p.add_(grad, alpha=-group["lr"])
        return loss
