"""A ResNet for CIFAR-10 (32x32 images), after He et al., "Deep Residual Learning" (2015).

Unlike the ImageNet ResNet, the stem is a single 3x3 convolution with stride 1 and no
max-pooling, so a 32x32 image keeps its resolution in layer1 and is halved by layer2,
layer3 and layer4 (32 -> 32 -> 16 -> 8 -> 4) before global average pooling.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, plus a shortcut: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    The shortcut is the identity (an empty nn.Sequential) when the shape is unchanged,
    else a 1x1 convolution with the block's stride followed by batch norm, so that the
    residual and the shortcut have the same shape.
    """

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        raise NotImplementedError('conv1 (3x3, stride, padding 1, no bias), bn1, conv2 (3x3, stride 1), bn2, shortcut')

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError('relu(bn1(conv1(x))), then bn2(conv2(.)), add shortcut(x), relu')


class ResNet(nn.Module):
    """conv1 (3x3, 64) -> bn1 -> relu -> layer1..layer4 (64, 128, 256, 512 channels) -> average pool -> fc."""

    def __init__(self, block: type[nn.Module], num_blocks: list[int], num_classes: int = 10) -> None:
        super().__init__()
        raise NotImplementedError('the stem (conv1, bn1), layer1..layer4 from _make_layer (strides 1, 2, 2, 2), fc')

    def _make_layer(self, block: type[nn.Module], out_channels: int, num_blocks: int, stride: int) -> nn.Sequential:
        """A stage: the first block changes stride and width, the others keep them."""
        raise NotImplementedError('blocks with strides [stride, 1, 1, ...]; track self.in_channels')

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError('stem, the four stages, global average pooling, flatten, fc')


def resnet18(num_classes: int = 10) -> ResNet:
    """ResNet-18: two BasicBlocks per stage (11,173,962 parameters with 10 classes)."""
    raise NotImplementedError('ResNet(BasicBlock, [2, 2, 2, 2], num_classes)')
