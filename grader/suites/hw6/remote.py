"""Helpers that hw6's checks run inside the child (as `child.suite.<name>`).

A ResNet-18 state_dict in float64 is about 90 MB: too much to send to the child with
every check. Both sides draw it instead, from the same keys, shapes and seed, with
`random_state` (reference.py imports this function, so the two never drift apart).
"""
import torch


def random_state(entries, seed=0, dtype=torch.float64, device="cpu"):
    """Values for a state_dict layout [(key, shape), ...]: He-normal convolutions, BatchNorm affine
    parameters and running statistics away from their defaults (so every one of them matters)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in entries:
        shape = tuple(shape)
        if key.endswith("num_batches_tracked"):
            value = torch.tensor(0)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            value = torch.randn(shape, generator=g, dtype=dtype) * (2 / fan_in) ** 0.5
        elif key == "fc.weight":
            value = torch.randn(shape, generator=g, dtype=dtype) / shape[1] ** 0.5
        elif key.endswith("running_var"):
            value = torch.rand(shape, generator=g, dtype=dtype) + 0.5
        elif key.endswith(("running_mean", "bias")):
            value = torch.randn(shape, generator=g, dtype=dtype) * 0.2
        else:  # BatchNorm weight
            value = torch.rand(shape, generator=g, dtype=dtype) * 0.6 + 0.7
        state[key] = value.to(device)
    return state


def pick(mapping, keys):
    """[mapping[k] for k in keys], None where a key is missing (e.g. a few gradients out of many)."""
    return [mapping.get(k) for k in keys]


def shapes(state_dict):
    """{key: shape} of a state_dict: its layout without its (large) values."""
    return {k: tuple(v.shape) for k, v in state_dict.items()}
