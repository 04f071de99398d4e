"""Not Adam at all: a plain SGD step (p -= lr * grad, L2 weight decay) behind Adam's interface, with a
per-parameter step count. Every feature behaves consistently with itself."""
import torch
from torch import optim


class AdamOptimizer(optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                state["step"] = state.get("step", 0) + 1
                p.add_(g, alpha=-group["lr"])
        return loss
