"""Helpers that hw10's checks run inside the child (as `child.suite.<name>`).

Trusted, public code: it runs backward through the student's loss the way a training loop
would, after the grader has compared the loss itself.
"""
import torch

DETACHED = "the loss does not require grad"


def grads(loss, leaves, upstream=None):
    """[leaf.grad for leaf in leaves] after backward of sum(loss * upstream) (of the loss when upstream is
    None); DETACHED instead when the loss is not connected to autograd at all."""
    if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
        return DETACHED
    (loss if upstream is None else loss * upstream).sum().backward()
    return [leaf.grad for leaf in leaves]
