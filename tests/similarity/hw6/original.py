"""My ResNet for hw6."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels, out_channels, stride=1):
        super(BasicBlock, self).__init__()
        # main path
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        # skip path
        needs_projection = stride > 1 or in_channels != out_channels
        if needs_projection:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = nn.Sequential()

    def forward(self, x):
        residual = self.shortcut(x)
        h = self.conv1(x)
        h = self.bn1(h)
        h = torch.relu(h)
        h = self.conv2(h)
        h = self.bn2(h)
        h = h + residual
        return torch.relu(h)


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes=10):
        super(ResNet, self).__init__()
        self.in_channels = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths = [64, 128, 256, 512]
        strides = [1, 2, 2, 2]
        self.layer1 = self._make_layer(block, widths[0], num_blocks[0], strides[0])
        self.layer2 = self._make_layer(block, widths[1], num_blocks[1], strides[1])
        self.layer3 = self._make_layer(block, widths[2], num_blocks[2], strides[2])
        self.layer4 = self._make_layer(block, widths[3], num_blocks[3], strides[3])
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)

    def _make_layer(self, block, out_channels, num_blocks, stride):
        modules = [block(self.in_channels, out_channels, stride)]
        self.in_channels = out_channels * block.expansion
        count = 1
        while count < num_blocks:
            modules.append(block(self.in_channels, out_channels, 1))
            count += 1
        return nn.Sequential(*modules)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            h = stage(h)
        h = self.pool(h)
        h = torch.flatten(h, 1)
        logits = self.fc(h)
        return logits


def resnet18(num_classes=10):
    model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
    return model
