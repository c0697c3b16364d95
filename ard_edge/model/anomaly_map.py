"""The anomaly map, the score and the training loss: one implementation for training-time
validation, evaluation, the PyTorch engine and the exported ONNX graph."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Reverse Distillation's and PatchCore's blur, in model pixels; the model's own is ModelConfig.blur_sigma.
BLUR_SIGMA = 4.0


def blur_radius(sigma: float) -> int:
    """Half-width of the blur kernel: 4 sigma, as scipy's gaussian_filter truncates."""
    return int(4.0 * sigma + 0.5)


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    radius = blur_radius(sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


# Quantiles of the held-out good images' per-scale distances that map to 0 and 1 (EfficientAD
# normalizes its maps the same way): each scale then counts alike, instead of the noisiest one
# setting the score.
SCALE_QUANTILES = (0.9, 0.995)


class AnomalyMap(nn.Module):
    """Per scale 1 - cosine over channels, normalized, bilinear upsampling, sum, Gaussian blur."""

    def __init__(self, image_size: tuple[int, int], num_scales: int = 3, sigma: float = BLUR_SIGMA):
        super().__init__()
        self.image_size = tuple(image_size)
        kernel = gaussian_kernel1d(sigma)
        self.radius = len(kernel) // 2
        self.register_buffer("kernel_x", kernel.view(1, 1, 1, -1), persistent=False)
        self.register_buffer("kernel_y", kernel.view(1, 1, -1, 1), persistent=False)
        # Identity until fitted (``fit_scales``): the plain sum of Reverse Distillation.
        self.register_buffer("scale_low", torch.zeros(num_scales))
        self.register_buffer("scale_span", torch.ones(num_scales))

    def forward(self, teacher: list[torch.Tensor], student: list[torch.Tensor]) -> torch.Tensor:
        total = None
        for k, distance in enumerate(scale_distances(teacher, student)):
            distance = (distance - self.scale_low[k]) / self.scale_span[k]
            distance = self.upsample(distance)
            total = distance if total is None else total + distance
        return self.blur(total)

    def upsample(self, amap: torch.Tensor) -> torch.Tensor:
        return F.interpolate(amap, size=self.image_size, mode="bilinear", align_corners=False)

    @torch.no_grad()
    def fit_scales(self, distances: list[torch.Tensor]) -> None:
        """Set each scale's normalization from good images' distance maps (one tensor per scale)."""
        for k, maps in enumerate(distances):
            low, high = torch.quantile(_sample(maps.flatten()), torch.tensor(SCALE_QUANTILES)).tolist()
            self.scale_low[k] = low
            self.scale_span[k] = max(high - low, 1e-6)

    def blur(self, amap: torch.Tensor) -> torch.Tensor:
        # Two 1-D passes cost 2k instead of k^2 multiply-adds per pixel; reflect keeps borders unbiased.
        r = self.radius
        amap = F.conv2d(F.pad(amap, (r, r, 0, 0), mode="reflect"), self.kernel_x)
        return F.conv2d(F.pad(amap, (0, 0, r, r), mode="reflect"), self.kernel_y)


def scale_distances(teacher: list[torch.Tensor], student: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per scale 1 - cosine over channels, each (B, 1, h, w) at its own resolution."""
    return [1.0 - F.cosine_similarity(t, s, dim=1).unsqueeze(1) for t, s in zip(teacher, student)]


def _sample(values: torch.Tensor, limit: int = 1 << 24) -> torch.Tensor:
    # torch.quantile refuses inputs above 2**24 elements; an even subsample keeps the quantiles.
    step = -(-values.numel() // limit)
    return values[::step]


def image_score(amap: torch.Tensor) -> torch.Tensor:
    """Max of each map: (B, 1, H, W) -> (B,)."""
    return amap.flatten(1).amax(dim=1)


def distillation_loss(teacher: list[torch.Tensor], student: list[torch.Tensor]) -> torch.Tensor:
    """Reverse Distillation's loss: per scale, 1 - cosine of the flattened maps, batch mean, summed."""
    loss = teacher[0].new_zeros(())
    for t, s in zip(teacher, student):
        loss = loss + (1.0 - F.cosine_similarity(t.flatten(1), s.flatten(1), dim=1)).mean()
    return loss
