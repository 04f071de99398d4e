"""hw4: the Adam optimizer (Kingma & Ba, 2015), computed exactly as torch.optim.Adam does."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer


class AdamOptimizer(Optimizer):
    """Adam with L2 weight decay and optional AMSGrad, a drop-in for torch.optim.Adam.

    Subclassing Optimizer gives param groups, `state`, `state_dict`/`load_state_dict`,
    `zero_grad` and learning-rate schedulers for free; only `step` is Adam itself.
    Per parameter, `self.state[p]` holds `step` (how many updates p has had),
    `exp_avg` (m), `exp_avg_sq` (v) and, with amsgrad, `max_exp_avg_sq` — the names
    torch.optim.Adam uses.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        raise NotImplementedError('reject invalid hyperparameters (ValueError), then put them in a `defaults` dict')
        # Optimizer fills each param group's missing hyperparameters from `defaults`.
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; return the closure's loss, if any.

        The closure re-evaluates the model, so it runs with gradients enabled even though
        the update itself must not be recorded by autograd.
        """
        raise NotImplementedError('run the closure under torch.enable_grad(), then update each parameter of each group with Adam')
