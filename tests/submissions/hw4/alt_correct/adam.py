"""A correct Adam written differently from the solution: explicit m_hat / v_hat, the step kept as a
float32 tensor like torch.optim.Adam, defaults built with keywords, one helper per parameter."""
import torch
import torch.optim as optim


class AdamOptimizer(optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError("invalid hyperparameter")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay, "amsgrad": amsgrad})

    def _update(self, p, group):
        g = p.grad.detach()
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p.detach()
        st = self.state[p]
        if len(st) == 0:
            st["step"] = torch.tensor(0.0)
            st["exp_avg"] = torch.zeros_like(p.detach())
            st["exp_avg_sq"] = torch.zeros_like(p.detach())
            if group["amsgrad"]:
                st["max_exp_avg_sq"] = torch.zeros_like(p.detach())
        st["step"] += 1
        t = st["step"].item()
        b1, b2 = group["betas"]
        st["exp_avg"].copy_(b1 * st["exp_avg"] + (1 - b1) * g)
        st["exp_avg_sq"].copy_(b2 * st["exp_avg_sq"] + (1 - b2) * g * g)
        v = st["exp_avg_sq"]
        if group["amsgrad"]:
            st["max_exp_avg_sq"].copy_(torch.where(v > st["max_exp_avg_sq"], v, st["max_exp_avg_sq"]))
            v = st["max_exp_avg_sq"]
        m_hat = st["exp_avg"] / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        p.data -= group["lr"] * m_hat / (torch.sqrt(v_hat) + group["eps"])

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            for group in self.param_groups:
                for p in filter(lambda q: q.grad is not None, group["params"]):
                    self._update(p, group)
        return loss
