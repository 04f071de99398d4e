"""BasicBlock with the ReLU applied before the shortcut is added instead of after (the
layout is the reference's; every value differs)"""
import torch
from torch import nn
import torch.nn.functional as F


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        project = stride != 1 or in_channels != self.expansion * out_channels
        self.shortcut = nn.Sequential(*(
            [nn.Conv2d(in_channels, self.expansion * out_channels, 1, stride, bias=False),
             nn.BatchNorm2d(self.expansion * out_channels)] if project else []))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return y + self.shortcut(x)  # the ReLU before the addition, none after it


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes=10):
        super().__init__()
        self.conv1 = conv3x3(3, 64)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (width, first_stride) in enumerate(zip((64, 128, 256, 512), (1, 2, 2, 2))):
            blocks = []
            for s in [first_stride] + [1] * (num_blocks[i] - 1):
                blocks.append(block(cin, width, s))
                cin = width * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            out = getattr(self, f"layer{i}")(out)
        out = F.avg_pool2d(out, 4)
        return self.fc(out.view(out.size(0), -1))


def resnet18(num_classes=10):
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
