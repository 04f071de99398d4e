"""What the child does about torch's start-up cost (kept apart: kit's own tests import it alone)."""
from __future__ import annotations

import sys

import torch


def defer_dynamo_import() -> None:
    """Let student code create a torch.optim.Optimizer without importing torch._dynamo (about 1 s).

    torch wraps Optimizer.add_param_group, state_dict, load_state_dict and zero_grad in
    `torch._disable_dynamo`, whose first call imports torch._dynamo only to mark them "never
    compile". Until torch._dynamo is imported nothing can be compiled, so until then each
    wrapper calls its function directly; once torch._dynamo exists it resolves to torch's own
    disabled function, as without this. A torch whose wrappers look different is left alone.
    """
    try:
        inner = torch._compile._disable_dynamo(defer_dynamo_import).__code__
    except AttributeError:
        return
    for wrapper in vars(torch.optim.Optimizer).values():
        if getattr(wrapper, "__code__", None) is not inner:
            continue
        cells = dict(zip(inner.co_freevars, (cell.cell_contents for cell in wrapper.__closure__)))
        fn, recursive = cells.get("fn"), cells.get("recursive", True)
        if callable(fn) and getattr(fn, "__dynamo_disable", None) is None:
            fn.__dynamo_disable = _until_dynamo(fn, recursive)


def _until_dynamo(fn, recursive: bool):
    def call(*args, **kwargs):
        dynamo = sys.modules.get("torch._dynamo")
        if dynamo is None:
            return fn(*args, **kwargs)
        disabled = dynamo.disable(fn, recursive, wrapping=False)
        fn.__dynamo_disable = disabled
        return disabled(*args, **kwargs)

    return call


