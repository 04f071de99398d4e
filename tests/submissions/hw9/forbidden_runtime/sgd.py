"""Forbidden on purpose: the single-tensor SGD kernel is looked up by a name built at run time,
which no static scan can read; the child's runtime guard has to catch the call."""
import importlib

import torch
from torch.optim import Optimizer


def _kernel():
    module = importlib.import_module(".".join(["torch", "optim", "".join(reversed("dgs"))]))
    return getattr(module, chr(95) + "single_tensor_" + "".join(reversed("dgs")))


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
            _kernel()(params, [p.grad for p in params], bufs, None, None, weight_decay=group["weight_decay"],
                      momentum=group["momentum"], lr=group["lr"], dampening=group["dampening"],
                      nesterov=group["nesterov"], maximize=group["maximize"], has_sparse_grad=False)
            if group["momentum"]:
                for p, buf in zip(params, bufs):
                    self.state[p]["momentum_buffer"] = buf
        return loss
