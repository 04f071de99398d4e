"""References for hw4's checks, computed in the grader: torch.optim.Adam, and Adam written out by
hand with one known mistake at a time (to name the likely cause of a difference).

Gradients come from a *source*: a list of per-step gradient lists (None = no gradient), or a
`Quadratic` whose gradients depend on the parameters, as in a real training loop.
"""
from __future__ import annotations

import math
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


def bounded(shapes, steps: int, seed: int, low: float = 0.5, high: float = 1.5, scale: float = 1.0):
    """Per-step gradients with random signs and magnitudes in [low, high] * scale.

    Kept away from zero on purpose: then eps=1e-8 is negligible wherever it is added,
    so only the checks about eps depend on where it goes.
    """
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        step = []
        for shape in shapes:
            magnitude = torch.empty(shape, dtype=F64).uniform_(low, high, generator=gen)
            sign = torch.randint(0, 2, shape, generator=gen).to(F64) * 2 - 1
            step.append(magnitude * sign * scale)
        out.append(step)
    return out


def randn(shapes, seed: int, scale: float = 1.0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, dtype=F64, generator=gen) * scale for shape in shapes]


def torch_adam(inits, source, steps: int, groups=None, **hp):
    """(parameters after each step, the optimizer) for torch.optim.Adam(foreach=False)."""
    params = [p.clone().requires_grad_(True) for p in inits]
    opt = torch.optim.Adam(params if groups is None else groups(params), foreach=False, **hp)
    out = []
    for k in range(steps):
        for p, g in zip(params, grads_at(source, k, [p.detach() for p in params])):
            p.grad = None if g is None else g.clone()
        opt.step()
        out.append([p.detach().clone() for p in params])
    return out, opt


def hand_adam(inits, source, steps: int, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
              amsgrad=False, mistake: str | None = None):
    """Parameters after each step of Adam written out by hand, with `mistake` made on purpose.

    mistakes: no_bias_correction, off_by_one (bias corrections use t + 1), eps_in_sqrt
    (sqrt(v_hat + eps)), eps_hat (eps added before dividing by sqrt(1 - beta2^t)), adamw
    (decoupled decay), decay_after_step (param *= 1 - lr * weight_decay after the update),
    amsgrad_ignored, amsgrad_corrected_max (max over v_hat), amsgrad_uncorrected (the max is not
    bias corrected), eps_ignored.
    """
    b1, b2 = betas
    params = [p.clone() for p in inits]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    vmax = [torch.zeros_like(p) for p in params]
    count = [0] * len(params)
    out = []
    for k in range(steps):
        for i, g in enumerate(grads_at(source, k, params)):
            if g is None:
                continue
            p = params[i]
            if weight_decay and mistake != "decay_after_step":
                if mistake == "adamw":
                    p.mul_(1 - lr * weight_decay)
                else:
                    g = g + weight_decay * p
            count[i] += 1
            t = count[i] + (1 if mistake == "off_by_one" else 0)
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            bc1, bc2 = (1.0, 1.0) if mistake == "no_bias_correction" else (1 - b1**t, 1 - b2**t)
            second = v[i]
            if amsgrad and mistake != "amsgrad_ignored":
                if mistake == "amsgrad_corrected_max":
                    vmax[i] = torch.maximum(vmax[i], v[i] / bc2)
                    second = vmax[i] * bc2  # divided by bc2 again below
                else:
                    vmax[i] = torch.maximum(vmax[i], v[i])
                    second = vmax[i]
            if mistake == "eps_in_sqrt":
                denom = (second / bc2 + eps).sqrt()
            elif mistake == "eps_hat":
                denom = (second.sqrt() + eps) / math.sqrt(bc2)
            elif mistake == "eps_ignored":
                denom = second.sqrt() / math.sqrt(bc2)
            elif mistake == "amsgrad_uncorrected":
                denom = second.sqrt() / (1.0 if amsgrad else math.sqrt(bc2)) + eps
            else:
                denom = second.sqrt() / math.sqrt(bc2) + eps
            params[i] = p - lr / bc1 * m[i] / denom
            if weight_decay and mistake == "decay_after_step":
                params[i] = params[i] * (1 - lr * weight_decay)
        out.append([p.clone() for p in params])
    return out


def moments_by_hand(source, steps: int, inits, betas=(0.9, 0.999), mistake: str | None = None):
    """(exp_avg, exp_avg_sq, max_exp_avg_sq) per parameter after `steps` fixed gradients (wd=0).

    mistakes: swapped_betas (beta and 1 - beta exchanged), corrected_max (max over v_hat).
    """
    b1, b2 = betas
    if mistake == "swapped_betas":
        b1, b2 = 1 - b1, 1 - b2
    m = [torch.zeros_like(p) for p in inits]
    v = [torch.zeros_like(p) for p in inits]
    vmax = [torch.zeros_like(p) for p in inits]
    for k in range(steps):
        for i, g in enumerate(source[k]):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            hat = v[i] / (1 - betas[1] ** (k + 1)) if mistake == "corrected_max" else v[i]
            vmax[i] = torch.maximum(vmax[i], hat)
    return m, v, vmax
