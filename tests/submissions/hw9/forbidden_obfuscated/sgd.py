"""Forbidden on purpose: step() hands the update to torch.optim._functional.sgd, reached through
getattr with strings glued together so that no forbidden name is spelled out."""
import torch
from torch.optim import Optimizer

_optim = getattr(torch, "op" + "tim")
_kernel = getattr(getattr(_optim, "_func" + "tional"), "s" + "gd")


class SGDMomentum(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 maximize=False):
        if lr < 0 or momentum < 0 or weight_decay < 0 or (nesterov and (momentum <= 0 or dampening != 0)):
            raise ValueError("invalid hyperparameters")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            bufs = [self.state[p].get("momentum_buffer") for p in params]
            _kernel(params, [p.grad for p in params], bufs, foreach=False, weight_decay=group["weight_decay"],
                    momentum=group["momentum"], lr=group["lr"], dampening=group["dampening"],
                    nesterov=group["nesterov"], maximize=group["maximize"])
            if group["momentum"]:
                for p, buf in zip(params, bufs):
                    self.state[p]["momentum_buffer"] = buf
        return loss
