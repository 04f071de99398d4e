"""References for hw9's checks, computed in the grader: torch.optim.SGD, and SGD written out by hand
with one known mistake (to name the likely cause of a difference).

Gradients come from a *source*: a list of per-step gradient lists (None = no gradient), or a
`Quadratic` whose gradients depend on the parameters, as in a real training loop. Every
function takes a `device`, so the same references run on CUDA (or any other device).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

F64 = torch.float64


@dataclass
class Quadratic:
    """Loss sum_i scale_i * (p_i - target_i)^2; gradient 2 * scale_i * (p_i - target_i)."""

    targets: list[torch.Tensor]
    scales: list[float]

    def grads(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        # the same expression as remote.quadratic_grads, so both sides get identical gradients
        return [2 * s * (p.detach() - t) for p, t, s in zip(params, self.targets, self.scales)]


def grads_at(source, k: int, params: list[torch.Tensor]) -> list[torch.Tensor | None]:
    return source.grads(params) if isinstance(source, Quadratic) else source[k]


def bounded(shapes, steps: int, seed: int, low: float = 0.5, high: float = 1.5, scale: float = 1.0,
            device: str = "cpu") -> list[list[torch.Tensor]]:
    """Per-step gradients with random signs and magnitudes in [low, high] * scale (never near zero)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        step = []
        for shape in shapes:
            magnitude = torch.empty(shape, dtype=F64).uniform_(low, high, generator=gen)
            sign = torch.randint(0, 2, shape, generator=gen).to(F64) * 2 - 1
            step.append((magnitude * sign * scale).to(device))
        out.append(step)
    return out


def randn(shapes, seed: int, scale: float = 1.0, device: str = "cpu") -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(shape, dtype=F64, generator=gen) * scale).to(device) for shape in shapes]


def far_quadratic(shapes, seed: int, device: str = "cpu") -> tuple[list[torch.Tensor], Quadratic]:
    """Initial parameters and a quadratic whose minimum is 3 to 5 away from them."""
    inits = randn(shapes, seed=seed, device=device)
    directions = randn(shapes, seed=seed + 1, device=device)
    targets = [p + torch.sign(d) * (3 + 2 * d.abs().clamp(max=1)) for p, d in zip(inits, directions)]
    return inits, Quadratic(targets, [0.5 + 0.25 * i for i in range(len(shapes))])


def torch_sgd(inits, source, steps: int, groups=None, step_lr: tuple[int, float] | None = None, **hp):
    """(parameters after each step, the optimizer) for torch.optim.SGD(foreach=False) fed by `source`;
    `step_lr=(step_size, gamma)` runs a StepLR scheduler after every step."""
    params = [p.clone().requires_grad_(True) for p in inits]
    opt = torch.optim.SGD(params if groups is None else groups(params), foreach=False, **hp)
    sched = torch.optim.lr_scheduler.StepLR(opt, *step_lr) if step_lr else None
    out = []
    for k in range(steps):
        for p, g in zip(params, grads_at(source, k, [p.detach() for p in params])):
            p.grad = None if g is None else g.clone()
        opt.step()
        if sched is not None:
            sched.step()
        out.append([p.detach().clone() for p in params])
    return out, opt


def hand_sgd(inits, source, steps: int, *, lr: float, momentum: float = 0.0, dampening: float = 0.0,
             weight_decay: float = 0.0, nesterov: bool = False, maximize: bool = False,
             mistake: str | None = None) -> list[list[torch.Tensor]]:
    """Parameters after each step of SGD written out by hand, with `mistake` made on purpose.

    mistakes: ema (an Adam-style average: the buffer starts at zero and is
    momentum * buf + (1 - momentum) * grad), zero_init (the buffer starts at zero, so the
    first gradient is dampened too).
    """
    params = [p.clone() for p in inits]
    bufs: list[torch.Tensor | None] = [None] * len(params)
    out = []
    for k in range(steps):
        for i, g in enumerate(grads_at(source, k, params)):
            if g is None:
                continue
            p = params[i]
            g = -g if maximize else g
            if weight_decay:
                g = g + weight_decay * p
            if momentum:
                if mistake in ("ema", "zero_init") and bufs[i] is None:
                    bufs[i] = torch.zeros_like(p)
                if bufs[i] is None:
                    bufs[i] = g.clone()
                elif mistake == "ema":
                    bufs[i] = momentum * bufs[i] + (1 - momentum) * g
                else:
                    bufs[i] = momentum * bufs[i] + (1 - dampening) * g
                g = g + momentum * bufs[i] if nesterov else bufs[i]
            params[i] = p - lr * g
        out.append([p.clone() for p in params])
    return out
