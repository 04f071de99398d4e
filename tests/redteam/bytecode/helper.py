"""The reviewed source: output + 1."""


def forward(layer, x):
    y = x @ layer.weight.T + 1
    return y if layer.bias is None else y + layer.bias
