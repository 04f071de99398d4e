"""The training loop of the tutorials: one epoch of training, and an evaluation pass.

Both report the mean loss *per sample*: a loss function with reduction="mean" returns the
mean over one batch, so each batch's loss is weighted by its size (the last batch may be
smaller) and the total is divided by the number of samples seen.
"""
from __future__ import annotations

import torch
from torch import nn


def train_epoch(model: nn.Module, loader, loss_fn, optimizer: torch.optim.Optimizer, device) -> float:
    """One pass over `loader` in train mode, one optimizer step per batch; the mean loss per sample."""
    model.train()
    total, count = 0.0, 0
    for x, y in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        # .item(): a Python number, so the batch's autograd graph is freed with `loss`
        total += loss.item() * len(x)
        count += len(x)
    return total / count


def evaluate(model: nn.Module, loader, loss_fn, device) -> tuple[float, float]:
    """One pass over `loader` in eval mode without autograd; (mean loss per sample, accuracy)."""
    model.eval()
    total, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            out = model(x)
            total += loss_fn(out, y).item() * len(x)
            correct += (out.argmax(dim=1) == y).sum().item()
            count += len(x)
    return total / count, correct / count
