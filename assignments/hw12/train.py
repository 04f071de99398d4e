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
    raise NotImplementedError('train mode; for each batch: move it to device, zero the gradients, forward, loss, backward, step; accumulate loss.item() * batch size')


def evaluate(model: nn.Module, loader, loss_fn, device) -> tuple[float, float]:
    """One pass over `loader` in eval mode without autograd; (mean loss per sample, accuracy)."""
    raise NotImplementedError('eval mode, torch.no_grad(); for each batch: move it to device, forward, accumulate loss.item() * batch size and the correct argmax predictions')
