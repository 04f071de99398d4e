"""Helpers that hw12's checks run inside the child (as `child.suite.<name>`): what a training loop is given.

The student's `train_epoch` and `evaluate` run on real torch objects built here: a DataLoader over
a synthetic classification set, a small classifier (`Probe`) and an SGD optimizer. The probe also
records, at every forward, what the loop set up around it (train or eval mode, the device of the
batch, whether autograd records a graph) and how many earlier forwards' graphs are still alive.
The grader's reference loop (loop_reference.py) builds the same data and model with this very
code, so the two never drift apart.
"""
import gc
import weakref

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

F64 = torch.float64


def data(seed, n, features=6, classes=3):
    """n samples (features,) in float64 and their int64 labels, from `seed` alone."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g, dtype=F64)
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


def loader(seed, n, batch_size, features=6, classes=3, shuffle_seed=None):
    """A DataLoader over data(seed, n, ...) in batches of `batch_size` (the last one smaller when n is not a
    multiple); shuffled by a generator seeded with `shuffle_seed` when one is given."""
    x, y = data(seed, n, features, classes)
    generator = None if shuffle_seed is None else torch.Generator().manual_seed(shuffle_seed)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=generator is not None,
                      generator=generator)


class _Token:
    """Lives exactly as long as the autograd graph of one forward (a weak reference tells)."""

    __slots__ = ("__weakref__",)


class _Keep(torch.autograd.Function):
    """The identity; its node in the graph holds a _Token, so the token dies with the graph."""

    @staticmethod
    def forward(ctx, x, token):
        ctx.token = token
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class Probe(nn.Module):
    """A small float64 classifier (Linear, [BatchNorm1d], Tanh, [Dropout], Linear), its weights drawn from
    `seed` alone, that records every forward in `self.calls`."""

    def __init__(self, seed, features=6, hidden=8, classes=3, dropout=0.0, batchnorm=False):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        layers = [nn.Linear(features, hidden, dtype=F64)]
        if batchnorm:
            layers.append(nn.BatchNorm1d(hidden, dtype=F64))
        layers.append(nn.Tanh())
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(hidden, classes, dtype=F64))
        self.net = nn.Sequential(*layers)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=F64) / p.shape[-1] ** 0.5)
        self.calls = []
        self._graphs = []

    def forward(self, x):
        # modes: the `training` flags of the model and its submodules; earlier_graphs: the previous batch's
        # graph may still be held by the loop's `loss` until it is rebound, any more were kept on purpose
        self.calls.append({"modes": sorted({m.training for m in self.modules()}), "device": str(x.device),
                           "earlier_graphs": self._alive()})
        out = self.net(x)
        self.calls[-1]["graph"] = out.requires_grad
        if out.requires_grad:
            token = _Token()
            self._graphs.append(weakref.ref(token))
            out = _Keep.apply(out, token)
        return out.as_subclass(Valueless) if out.is_meta else out

    def _alive(self, allowed=1):
        """How many earlier forwards' graphs are alive; above `allowed`, counted again after collecting cycles."""
        alive = sum(ref() is not None for ref in self._graphs)
        if alive > allowed:
            gc.collect()
            alive = sum(ref() is not None for ref in self._graphs)
        return alive

    def graphs_alive(self):
        """How many forwards' graphs are still alive now."""
        return self._alive(allowed=0)

    def state(self):
        """Copies of every parameter and buffer, by name."""
        return {name: t.detach().clone() for name, t in [*self.named_parameters(), *self.named_buffers()]}


class Valueless(torch.Tensor):
    """The model's output on the emulated device (`meta`: shapes, no values). A loop reads numbers from it
    only to report them (loss.item(), (pred == y).sum().item(), loss.detach().cpu()); here they are zeros,
    so that the device check runs the whole loop instead of stopping at the first number (whatever is
    computed from this tensor is a Valueless too). On a real GPU the output is a plain tensor."""

    def values(self) -> torch.Tensor:
        """What reading this tensor gives: zeros of its shape and dtype, on the CPU."""
        return torch.zeros(self.shape, dtype=self.dtype)

    def item(self):
        return self.values().item()

    def tolist(self):
        return self.values().tolist()

    def numpy(self, *args, **kwargs):
        return self.values().numpy(*args, **kwargs)

    def cpu(self, *args, **kwargs):
        return self.values()

    def to(self, *args, **kwargs):
        device, dtype = torch._C._nn._parse_to(*args, **kwargs)[:2]
        if device is not None and device.type == "cpu":
            return self.values().to(dtype or self.dtype)
        return super().to(*args, **kwargs)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    __index__ = __int__


def sgd_update(params, lr):
    """p -= lr * p.grad for every parameter with a gradient (the reference loop calls this too)."""
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p.add_(p.grad, alpha=-lr)


class SGD(torch.optim.Optimizer):
    """Plain SGD, written here so that creating and stepping it imports no torch._dynamo; counts its steps."""

    def __init__(self, params, lr):
        super().__init__(params, {"lr": lr})
        self.steps = 0

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            sgd_update(group["params"], group["lr"])
        self.steps += 1
        return loss


def probe(seed, device="cpu", **kwargs):
    """Probe(seed, **kwargs) on `device`."""
    return Probe(seed, **kwargs).to(device)


def grads(model):
    """{name: p.grad} of the model's parameters."""
    return {name: p.grad for name, p in model.named_parameters()}


def kind(value):
    """What a returned value is: "float", "int", "tensor that requires grad", "tensor", or its type's name."""
    if isinstance(value, torch.Tensor):
        return "tensor that requires grad" if value.requires_grad else "tensor"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of " + ", ".join(kind(v) for v in value)
    return type(value).__name__
