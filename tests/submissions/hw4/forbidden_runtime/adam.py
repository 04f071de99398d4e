"""Forbidden on purpose: the functional Adam is looked up by a name built at run time, which no
static scan can read; the child's runtime guard has to catch the call."""
import importlib

import torch
from torch.optim import Optimizer


def _kernel():
    module = importlib.import_module(".".join(["torch", "optim", chr(95) + "functional"]))
    return getattr(module, "".join(reversed("mada")))


class AdamOptimizer(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    state["max_exp_avg_sq"] = torch.zeros_like(p)
            states = [self.state[p] for p in params]
            _kernel()(params, [p.grad for p in params], [s["exp_avg"] for s in states],
                      [s["exp_avg_sq"] for s in states], [s["max_exp_avg_sq"] for s in states],
                      [s["step"] for s in states], foreach=False, amsgrad=group["amsgrad"],
                      beta1=group["betas"][0], beta2=group["betas"][1], lr=group["lr"],
                      weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)
        return loss
