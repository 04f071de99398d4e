"""The tutorial's averaging: the sum of the batch losses divided by the number of batches
(the last batch is smaller, so its samples weigh more)."""
from __future__ import annotations

import torch
from torch import nn


def train_epoch(model: nn.Module, loader, loss_fn, optimizer: torch.optim.Optimizer, device) -> float:
    """One pass over `loader` in train mode, one optimizer step per batch; the mean loss per sample."""
    model.train()
    total, count = 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        # .item(): a Python number, so the batch's autograd graph is freed with `loss`
        total += loss.item()
        count += len(x)
    return total / len(loader)


def evaluate(model: nn.Module, loader, loss_fn, device) -> tuple[float, float]:
    """One pass over `loader` in eval mode without autograd; (mean loss per sample, accuracy)."""
    model.eval()
    total, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            total += loss_fn(out, y).item()
            correct += (out.argmax(dim=1) == y).sum().item()
            count += len(x)
    return total / len(loader), correct / count
