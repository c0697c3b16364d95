"""ResNet / Wide-ResNet feature extractors with torchvision's state_dict keys.

Module names (``conv1``, ``bn1``, ``layer1``.. and ``downsample.0/1``) match torchvision so
users load torchvision weight files as they are. ``layer4`` and ``fc`` are never built:
Reverse Distillation only uses layers 1-3.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride, padding=1, groups=groups, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample=None, base_width: int = 64):
        super().__init__()
        self.conv1 = _conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample=None, base_width: int = 64):
        super().__init__()
        width = int(planes * base_width / 64)
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetFeatures(nn.Module):
    """Stem + layer1..layer3, tapped at strides 4, 8, 16."""

    def __init__(self, block: type[nn.Module], layers: tuple[int, int, int], base_width: int = 64):
        super().__init__()
        self.base_width = base_width
        self.in_ch = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], 1)
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.feature_info = [
            {"num_chs": planes * block.expansion, "reduction": reduction, "module": name}
            for planes, reduction, name in ((64, 4, "layer1"), (128, 8, "layer2"), (256, 16, "layer3"))
        ]

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_ch != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.in_ch, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.in_ch, planes, stride, downsample, self.base_width)]
        self.in_ch = planes * block.expansion
        layers += [block(self.in_ch, planes, base_width=self.base_width) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        return [f1, f2, self.layer3(f2)]

    @staticmethod
    def unused_keys(key: str) -> bool:
        return key.startswith(("layer4.", "fc."))


RESNETS = {
    "resnet18": (BasicBlock, (2, 2, 2), 64),
    "resnet34": (BasicBlock, (3, 4, 6), 64),
    "resnet50": (Bottleneck, (3, 4, 6), 64),
    "wide_resnet50_2": (Bottleneck, (3, 4, 6), 128),
}
