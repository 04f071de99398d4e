"""Helpers that hw9's checks run inside the child (as `child.suite.<name>`).

Trusted, public code: it only sets gradients, takes snapshots and builds closures,
so a check can drive the student's optimizer the way a training loop would.
"""
import torch


def set_grads(params, grads):
    """p.grad = g for each pair; None leaves p without a gradient."""
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.detach().clone()


def quadratic_grads(params, targets, scales):
    """Gradients of sum_i sum(scale_i * (p_i - t_i)^2), written into p.grad."""
    for p, t, s in zip(params, targets, scales):
        p.grad = 2 * s * (p.detach() - t)


def l2_grads(params, grads, weight_decay):
    """p.grad = g + weight_decay * p: what L2 weight decay turns the gradient into."""
    for p, g in zip(params, grads):
        p.grad = g + weight_decay * p.detach()


def scale_params(params, factor):
    """p *= factor in place (decoupled weight decay done by hand)."""
    with torch.no_grad():
        for p in params:
            p.mul_(factor)


def snapshot(params):
    """Copies of the parameters' current values."""
    return [p.detach().clone() for p in params]


def grads_of(params):
    """Copies of the parameters' current .grad (None where there is none)."""
    return [None if p.grad is None else p.grad.detach().clone() for p in params]


def quadratic_closure(optimizer, params, targets):
    """A closure for optimizer.step(closure): zero the grads, loss = sum((p - t)^2), backward, return loss.

    It also records each loss it returns, in `closure.losses`, and how often it ran, in `closure.calls`.
    """

    def closure():
        optimizer.zero_grad()
        loss = sum(((p - t) ** 2).sum() for p, t in zip(params, targets))
        loss.backward()
        closure.losses.append(loss.detach().clone())
        closure.calls += 1
        return loss

    closure.losses = []
    closure.calls = 0
    return closure
