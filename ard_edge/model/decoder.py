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
    """Returns features with the teacher's channels at strides 4, 8, 16 (same order as the teacher).

    Stages run ``width`` times wider than the teacher (small teachers such as EfficientNet-Lite0
    have too few channels for a decoder of that width to reconstruct them); a 1x1 projection
    per stage brings the output back to the teacher's channels.
    """

    def __init__(self, in_channels: int, channels: tuple[int, int, int], blocks_per_stage: int = 2, width: int = 1):
        super().__init__()
        stages, projections, in_ch = [], [], in_channels
        for teacher_ch in reversed(channels):
            out_ch = teacher_ch * width
            blocks = [DecoderBlock(in_ch, out_ch, upsample=True)]
            blocks += [DecoderBlock(out_ch, out_ch, upsample=False) for _ in range(blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            projections.append(nn.Identity() if width == 1 else nn.Conv2d(out_ch, teacher_ch, 1))
            in_ch = out_ch
        self.stages = nn.ModuleList(stages)
        self.projections = nn.ModuleList(projections)

    def forward(self, embedding: torch.Tensor) -> list[torch.Tensor]:
        outputs, x = [], embedding
        for stage, projection in zip(self.stages, self.projections):
            x = stage(x)
            outputs.append(projection(x))
        return outputs[::-1]
