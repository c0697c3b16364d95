"""Student decoder: mirrors the teacher from the stride-32 embedding back to strides 16, 8, 4."""

from __future__ import annotations

import torch
from torch import nn


class DecoderBlock(nn.Module):
    """Residual block; the first block of a stage upsamples x2 with a transposed convolution."""

    def __init__(self, in_ch: int, out_ch: int, upsample: bool):
        super().__init__()
        first = (
            nn.ConvTranspose2d(in_ch, out_ch, 2, 2, bias=False)
            if upsample
            else nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        )
        self.branch = nn.Sequential(
            first,
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
        )
        self.shortcut = nn.Identity()
        if upsample:
            self.shortcut = nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 2, 2, bias=False), nn.BatchNorm2d(out_ch))
        elif in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x) + self.shortcut(x))


class StudentDecoder(nn.Module):
    """Returns features with the teacher's channels at strides 4, 8, 16 (same order as the teacher)."""

    def __init__(self, in_channels: int, channels: tuple[int, int, int], blocks_per_stage: int = 2):
        super().__init__()
        stages, in_ch = [], in_channels
        for out_ch in reversed(channels):
            blocks = [DecoderBlock(in_ch, out_ch, upsample=True)]
            blocks += [DecoderBlock(out_ch, out_ch, upsample=False) for _ in range(blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            in_ch = out_ch
        self.stages = nn.ModuleList(stages)

    def forward(self, embedding: torch.Tensor) -> list[torch.Tensor]:
        outputs, x = [], embedding
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs[::-1]
