"""Score heads fitted on good images after training: a patch memory bank and a global Gaussian.

Both read the frozen teacher's taps, so they add no training, only a fit. Inside the exported
graph each is a constant tensor and a MatMul (plus a ReduceMin for the bank), ops that every
backend (ONNX Runtime, OpenVINO, TensorRT 8.5+) runs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

# Taps (by index into the teacher's feature list) the bank compares: strides 8 and 16. The
# stride-4 tap measured worse (docs/results.md): its patches see too little context.
BANK_TAPS = (1, 2)
# Random projection used only to pick the coreset; distances at test time use the full vectors.
_CORESET_PROJECTION = 64
_CORESET_SEED = 0
# Mirror copies of the training images (uint8 NHWC) whose patches the bank also covers
# (ModelConfig.bank_augment). Mirrors only: rotations would turn a surface's oriented texture
# (the tiles' vertical grinding marks) into something no good part shows.
BANK_AUGMENTS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], ...]] = {
    "none": (),
    "flip": (lambda x: x.flip(2), lambda x: x.flip(1)),  # left-right, up-down
}
# What the Gaussian pools from each tap (ModelConfig.gaussian_features): the per-channel means, or
# the means and standard deviations (how much each channel varies over the frame: texture, contrast).
GAUSSIAN_FEATURES = ("mean", "mean+std")


class PatchBank(nn.Module):
    """PatchCore's memory bank: each patch's distance to its nearest good patch.

    A patch is the 3x3-averaged stride-8 tap concatenated with the stride-16 tap, upsampled to
    stride 8, so each vector sees the local texture and its surroundings.
    """

    def __init__(self, channels: tuple[int, ...], size: int):
        super().__init__()
        dim = sum(channels[k] for k in BANK_TAPS)
        self.register_buffer("bank", torch.zeros(size, dim))
        self.register_buffer("bank_sq", torch.zeros(size))

    def embed(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Teacher taps -> patch vectors (B, C, H/8, W/8)."""
        # Zero padding counts in the border averages, as in PatchCore's reference: border patches
        # then stay unlike inner ones (averaging only the real pixels cost 0.06 image AUROC, docs/results.md).
        taps = [F.avg_pool2d(features[k], 3, 1, 1) for k in BANK_TAPS]
        # Python ints: an export then holds constant sizes, not shape arithmetic on every call.
        size = tuple(int(s) for s in taps[0].shape[-2:])
        taps = [t if t.shape[-2:] == size else F.interpolate(t, size=size, mode="bilinear", align_corners=False)
                for t in taps]
        return torch.cat(taps, dim=1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Teacher taps -> nearest-neighbour distance map (B, 1, H/8, W/8)."""
        patches = self.embed(features)
        height, width = (int(s) for s in patches.shape[-2:])
        query = patches.flatten(2).transpose(1, 2)  # (B, HW, C)
        # |q - b|^2 = |q|^2 - 2 q.b + |b|^2; the |q|^2 term does not change which b is nearest.
        cross = self.bank_sq - 2.0 * torch.matmul(query, self.bank.t())
        nearest = cross.amin(dim=2) + (query * query).sum(dim=2)
        return nearest.clamp_min(0.0).sqrt().view(-1, 1, height, width)

    @torch.no_grad()
    def fit(self, patches: torch.Tensor, progress: Callable[[int, int], None] | None = None) -> None:
        """Greedy k-center coreset of ``patches`` (N, C): the bank covers every good patch closely."""
        chosen = greedy_coreset(patches, len(self.bank), progress)
        self.bank.copy_(patches[chosen])
        self.bank_sq.copy_((self.bank * self.bank).sum(dim=1))


def greedy_coreset(points: torch.Tensor, size: int, progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Indices of ``size`` points chosen farthest-first (PatchCore's coreset), on a random projection."""
    generator = torch.Generator().manual_seed(_CORESET_SEED)
    projection = torch.randn(points.shape[1], _CORESET_PROJECTION, generator=generator)
    projected = points @ (projection / _CORESET_PROJECTION**0.5)
    norms = (projected * projected).sum(dim=1)
    chosen = torch.empty(size, dtype=torch.long)
    chosen[0] = int(torch.randint(len(points), (1,), generator=generator))
    distance = norms - 2.0 * torch.mv(projected, projected[chosen[0]]) + norms[chosen[0]]
    for k in range(1, size):
        chosen[k] = int(distance.argmax())
        nearer = norms - 2.0 * torch.mv(projected, projected[chosen[k]]) + norms[chosen[k]]
        torch.minimum(distance, nearer, out=distance)
        if progress and ((k + 1) % 500 == 0 or k + 1 == size):
            progress(k + 1, size)
    return chosen


class GlobalGaussian(nn.Module):
    """Mahalanobis distance of the globally pooled teacher taps to the good images' Gaussian.

    It catches what has no local peak: a whole surface uneven, the wrong texture, a lighting change.
    """

    def __init__(self, channels: tuple[int, ...], features: str = "mean"):
        super().__init__()
        self.features = features
        dim = sum(channels) * (2 if features == "mean+std" else 1)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("precision", torch.eye(dim))

    def pool(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Taps -> (B, D): every tap's per-channel means, then (mean+std) their standard deviations."""
        means = [f.mean(dim=(2, 3)) for f in features]
        if self.features == "mean":
            return torch.cat(means, dim=1)
        # Written out (ReduceMean, Sub, Mul, Sqrt in the graph) rather than torch.std, whose export
        # varies by opset; unbiased, as torch.std.
        stds = []
        for f, mean in zip(features, means):
            centred = f - mean[:, :, None, None]
            pixels = f.shape[2] * f.shape[3]
            stds.append(((centred * centred).mean(dim=(2, 3)) * (pixels / (pixels - 1))).sqrt())
        return torch.cat(means + stds, dim=1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Teacher taps -> Mahalanobis distance (B,)."""
        centred = self.pool(features) - self.mean
        return (torch.matmul(centred, self.precision) * centred).sum(dim=1).clamp_min(0.0).sqrt()

    @torch.no_grad()
    def fit(self, pooled: torch.Tensor) -> None:
        """Mean and shrunk inverse covariance of ``pooled`` (N, D): Ledoit-Wolf, since N ~ D here."""
        from sklearn.covariance import LedoitWolf

        estimate = LedoitWolf().fit(pooled.double().numpy())
        self.mean.copy_(torch.from_numpy(estimate.location_))
        self.precision.copy_(torch.from_numpy(estimate.precision_))
