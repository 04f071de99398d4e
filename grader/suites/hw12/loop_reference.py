"""The reference training and evaluation loops of hw12, and the loops of known mistakes (grader only).

They run on the objects the child builds for the student's loop (remote.py: the same data, the
same Probe with the same weights, the same SGD update), in float64, so the student's parameters
after an epoch and the returned means must equal these up to rounding. Each case is named by its
seeds and sizes, so the results are memoised (`@reference`).

    train:     for each batch: the batch's gradient alone, one SGD step; the epoch's loss is
               sum(batch loss * batch size) / number of samples
    evaluate:  eval mode, no autograd: the same mean loss, and correct predictions / number of samples

They are written as computations of those values (gradients from torch.autograd.grad, the
batches listed up front), not as a loop for students to copy: this file ships with the public
checks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kit.grader.suite import reference, sibling

P = sibling(__file__, "remote.py")  # the child's helpers: the reference builds exactly what the child builds

TRAIN_MISTAKES = {
    "no_zero_grad": "the gradients are never zeroed, so every step also adds the earlier batches' gradients: "
                    "call optimizer.zero_grad() once per batch, before loss.backward()",
    "step_after_loop": "optimizer.step() runs once, after the loop (only the last batch's gradient is used): "
                       "step once per batch",
    "zero_before_step": "the parameters did not change: the gradients are zeroed between loss.backward() and "
                        "optimizer.step(); zero them before the backward pass",
}
LOSS_MISTAKES = {
    "batch_means": "the mean of the batch losses: the last batch is smaller, so weight each batch's mean loss by its "
                   "size (loss.item() * len(x)) and divide by the number of samples",
    "means_over_samples": "the batch losses (already means) are summed and divided by the number of samples: "
                          "multiply each by its batch size first",
    "sum": "the sum of the batch losses: divide by the number of samples",
}
ACCURACY_MISTAKES = {
    "batch_means": "the mean of the batches' accuracies: the last batch is smaller, so count correct predictions over "
                   "all batches and divide by the number of samples",
    "percent": "the accuracy is a percentage: return the fraction of correct predictions (between 0 and 1)",
    "count": "the number of correct predictions: divide by the number of samples",
}


def batches(seed: int, n: int, batch_size: int, *, classes: int = 3, shuffle_seed: int | None = None,
            epochs: int = 1) -> list[list]:
    """The batches the loader a check builds (remote.loader(seed + 1, ...)) yields, in each epoch."""
    loader = P.loader(seed + 1, n, batch_size, classes=classes, shuffle_seed=shuffle_seed)
    return [list(loader) for _ in range(epochs)]


def per_sample(losses: list[float], sizes: list[int]) -> float:
    """The mean loss per sample, from the batches' mean losses and sizes."""
    return sum(loss * size for loss, size in zip(losses, sizes)) / sum(sizes)


@reference
def trained(seed: int, n: int, batch_size: int, *, lr: float = 0.5, epochs: int = 1, shuffle_seed: int | None = None,
            mistake: str | None = None, device: str = "cpu") -> dict:
    """The parameters after each epoch of SGD on the batches, one step per batch on that batch's gradient (or as
    one of TRAIN_MISTAKES does it), and each epoch's mean loss per sample (taken before each step)."""
    model = P.probe(seed, device=device)
    params = list(model.parameters())
    held = [torch.zeros_like(p) for p in params]  # what p.grad holds after each backward
    states, means = [], []
    for epoch in batches(seed, n, batch_size, shuffle_seed=shuffle_seed, epochs=epochs):
        losses, sizes = [], []
        for x, y in epoch:
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            fresh = torch.autograd.grad(loss, params)
            held = [h + g for h, g in zip(held, fresh)] if mistake == "no_zero_grad" else list(fresh)
            if mistake not in ("step_after_loop", "zero_before_step"):
                _step(params, held, lr)
            losses.append(loss.item())
            sizes.append(len(y))
        if mistake == "step_after_loop":
            _step(params, held, lr)
        states.append({name: p.detach().clone() for name, p in model.named_parameters()})
        means.append(per_sample(losses, sizes))
    return {"states": states, "losses": means}


def _step(params: list, grads: list, lr: float) -> None:
    """remote.sgd_update with these gradients: the very update the child's optimizer makes."""
    for p, g in zip(params, grads):
        p.grad = g
    P.sgd_update(params, lr)


@reference
def evaluated(seed: int, n: int, batch_size: int, *, classes: int = 3, device: str = "cpu") -> dict:
    """The mean loss per sample and the accuracy of the model over the batches, and what the known mistakes
    return."""
    model = P.probe(seed, device=device, classes=classes).eval()
    with torch.no_grad():
        pairs = [(model(x.to(device)), y.to(device)) for x, y in batches(seed, n, batch_size, classes=classes)[0]]
    losses = [F.cross_entropy(out, y).item() for out, y in pairs]
    hits = [int((out.argmax(dim=1) == y).sum()) for out, y in pairs]
    sizes = [len(y) for _, y in pairs]
    accuracy = sum(hits) / sum(sizes)
    return {"loss": per_sample(losses, sizes), "accuracy": accuracy,
            "loss_mistakes": loss_mistakes(losses, sizes),
            "accuracy_mistakes": {"batch_means": sum(h / s for h, s in zip(hits, sizes)) / len(sizes),
                                  "percent": 100 * accuracy, "count": float(sum(hits))}}


@reference
def epoch_loss(seed: int, n: int, batch_size: int) -> dict:
    """train_epoch's mean loss per sample with lr=0 (the parameters stay put, so each batch's loss is fixed), and
    what the known mistakes return."""
    model = P.probe(seed)
    with torch.no_grad():
        losses = [F.cross_entropy(model(x), y).item() for x, y in batches(seed, n, batch_size)[0]]
    sizes = [len(y) for _, y in batches(seed, n, batch_size)[0]]
    return {"loss": per_sample(losses, sizes), "mistakes": loss_mistakes(losses, sizes)}


def loss_mistakes(losses: list[float], sizes: list[int]) -> dict:
    """What LOSS_MISTAKES return for these batch losses."""
    return {"batch_means": sum(losses) / len(losses), "means_over_samples": sum(losses) / sum(sizes),
            "sum": per_sample(losses, sizes) * sum(sizes)}
