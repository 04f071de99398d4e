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
        raise NotImplementedError('reject invalid hyperparameters (ValueError, as torch.optim.SGD), then put them in a `defaults` dict')
        # Optimizer fills each param group's missing hyperparameters from `defaults`.
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; return the closure's loss, if any.

        The closure re-evaluates the model, so it runs with gradients enabled even though
        the update itself must not be recorded by autograd.
        """
        raise NotImplementedError('run the closure under torch.enable_grad(), then update each parameter of each group')
