"""A correct SGDMomentum written differently: the parameters of a group are updated together with
torch._foreach_* operations, the buffers are gathered in lists, and the update is p.sub_(lr * d_p)."""
import torch


class SGDMomentum(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 maximize=False):
        for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if nesterov and not (momentum > 0 and dampening == 0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening == 0")
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                    "nesterov": nesterov, "maximize": maximize}
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = closure() if closure is not None else None  # outside no_grad: backward works
        with torch.no_grad():
            for group in self.param_groups:
                self._update(group)
        return loss

    def _update(self, group):
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        d_ps = [torch.neg(p.grad) if group["maximize"] else p.grad.clone() for p in params]
        if group["weight_decay"]:
            torch._foreach_add_(d_ps, params, alpha=group["weight_decay"])
        m = group["momentum"]
        if m:
            bufs = []
            for p, d_p in zip(params, d_ps):
                buf = self.state[p].get("momentum_buffer")
                if buf is None:
                    buf = self.state[p]["momentum_buffer"] = torch.clone(d_p).detach()
                else:
                    buf.mul_(m).add_(d_p, alpha=1.0 - group["dampening"])
                bufs.append(buf)
            if group["nesterov"]:
                torch._foreach_add_(d_ps, bufs, alpha=m)
            else:
                d_ps = bufs
        for p, d_p in zip(params, d_ps):
            p.sub_(group["lr"] * d_p)
