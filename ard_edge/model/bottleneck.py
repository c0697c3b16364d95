"""Attention one-class bottleneck embedding (OCBE) of Reverse Distillation.

Taps 1 and 2 are brought to stride 16 by strided 3x3 convolutions, concatenated with tap 3,
and squeezed to stride 32 by residual bottleneck blocks with attention on their output branch.
"""

from __future__ import annotations

import torch
from torch import nn

from ard_edge.model.attention import build_attention


def conv_bn_relu(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class AttentionBottleneckBlock(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand, attention, residual add."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, attention: str):
        super().__init__()
        width = max(out_ch // 4, 16)
        self.branch = nn.Sequential(
            nn.Conv2d(in_ch, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            conv_bn_relu(width, width, stride),
            nn.Conv2d(width, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        )
        self.attention = build_attention(attention, out_ch)
        self.shortcut = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.attention(self.branch(x)) + self.shortcut(x))


class OneClassBottleneck(nn.Module):
    """Fuse the three teacher taps into one compact stride-32 embedding."""

    def __init__(self, channels: tuple[int, int, int], attention: str = "none", num_blocks: int = 3):
        super().__init__()
        c1, c2, c3 = channels
        self.down1 = nn.Sequential(conv_bn_relu(c1, c2, 2), conv_bn_relu(c2, c3, 2))
        self.down2 = conv_bn_relu(c2, c3, 2)
        self.out_channels = 2 * c3
        blocks = [AttentionBottleneckBlock(3 * c3, self.out_channels, 2, attention)]
        blocks += [
            AttentionBottleneckBlock(self.out_channels, self.out_channels, 1, attention)
            for _ in range(num_blocks - 1)
        ]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        f1, f2, f3 = features
        return self.blocks(torch.cat([self.down1(f1), self.down2(f2), f3], dim=1))
