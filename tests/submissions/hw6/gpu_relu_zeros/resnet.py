"""BasicBlock's ReLU written as torch.maximum(out, torch.zeros(out.shape)): right on the CPU; on a GPU
the zeros are made on the CPU and torch.maximum refuses to mix them with the GPU activations."""
from __future__ import annotations

import torch
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
        # the first convolution carries the stride: it halves the resolution when stride is 2
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()  # empty: the identity, and no state_dict entries
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x))
        out = torch.maximum(out, torch.zeros(out.shape, dtype=out.dtype))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return torch.maximum(out, torch.zeros(out.shape, dtype=out.dtype))


class ResNet(nn.Module):
    """conv1 (3x3, 64) -> bn1 -> relu -> layer1..layer4 (64, 128, 256, 512 channels) -> average pool -> fc."""

    def __init__(self, block: type[nn.Module], num_blocks: list[int], num_classes: int = 10) -> None:
        super().__init__()
        self.in_channels = 64
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(block, 64, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 128, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 256, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 512, num_blocks[3], stride=2)
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block: type[nn.Module], out_channels: int, num_blocks: int, stride: int) -> nn.Sequential:
        """A stage: the first block changes stride and width, the others keep them."""
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(block(self.in_channels, out_channels, s))
            self.in_channels = out_channels * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)  # (N, 512, 4, 4) -> (N, 512)
        return self.fc(out)


def resnet18(num_classes: int = 10) -> ResNet:
    """ResNet-18: two BasicBlocks per stage (11,173,962 parameters with 10 classes)."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes)
