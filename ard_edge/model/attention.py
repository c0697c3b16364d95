"""Channel/spatial attention modules placed inside every one-class bottleneck block.

ARD's authors have not published code; we put the attention where the Reverse Distillation
authors' own OCBE block (``AttnBottleneck``) leaves its attention hook: on the block's output
branch, after the last BatchNorm and before the residual addition (as in SE-ResNet).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ard_edge.errors import ConfigError

ATTENTIONS = ("none", "se", "eca", "cbam")


class SqueezeExcitation(nn.Module):
    """SE (Hu et al. 2018): global pooling, bottleneck MLP, sigmoid channel gates."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 8)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class EfficientChannelAttention(nn.Module):
    """ECA (Wang et al. 2020): a 1-D convolution across pooled channels, kernel from the width."""

    def __init__(self, channels: int, gamma: int = 2, beta: int = 1):
        super().__init__()
        kernel = int(abs(math.log2(channels) / gamma + beta / gamma))
        kernel = kernel if kernel % 2 else kernel + 1
        self.conv = nn.Conv1d(1, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean((2, 3)).unsqueeze(1)  # (B, 1, C)
        gate = self.conv(pooled).transpose(1, 2).unsqueeze(-1)  # (B, C, 1, 1)
        return x * torch.sigmoid(gate)


class CBAM(nn.Module):
    """CBAM (Woo et al. 2018): channel gates from avg+max pooling, then a 7x7 spatial gate."""

    def __init__(self, channels: int, reduction: int = 16, spatial_kernel: int = 7):
        super().__init__()
        hidden = max(channels // reduction, 8)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel_gate = self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True))
        x = x * torch.sigmoid(channel_gate)
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


def build_attention(kind: str, channels: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "se":
        return SqueezeExcitation(channels)
    if kind == "eca":
        return EfficientChannelAttention(channels)
    if kind == "cbam":
        return CBAM(channels)
    raise ConfigError(f"unknown attention '{kind}': choose one of {', '.join(ATTENTIONS)}")
