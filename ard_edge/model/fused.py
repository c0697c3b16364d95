"""The fused inference module: raw uint8 camera frames in, map, scores and decision out.

The same module is exported to ONNX (``ard_edge.export``) and run eagerly by the PyTorch engine
(``ard_edge.engines.torch_engine``), so the reference and the exported graph cannot drift apart.
"""

from __future__ import annotations

import torch
from torch import nn

from ard_edge._graph import OUTPUT_NAMES
from ard_edge.model.ard import ARDModel

__all__ = ["OUTPUT_NAMES", "FusedARD", "fused_from_checkpoint"]


class FusedARD(nn.Module):
    """Frames (B, H, W, C) uint8 -> anomaly_map (B, 1, H, W), score, normalized_score, is_anomalous.

    ``normalized_score`` maps the lowest held-out good score to 0 and the threshold to 0.5,
    linearly, clipped to 0..1: an operator reads 0.5 as "on the line" whatever the model.
    """

    def __init__(self, model: ARDModel, threshold: float, good_score_min: float):
        super().__init__()
        self.model = model.eval()
        span = max(threshold - good_score_min, 1e-6)
        self.register_buffer("threshold", torch.tensor(threshold, dtype=torch.float32), persistent=False)
        self.register_buffer("half_over_span", torch.tensor(0.5 / span, dtype=torch.float32), persistent=False)

    def forward(self, frames: torch.Tensor):
        amap, score = self.model.predict(frames)
        normalized = torch.clamp(0.5 + (score - self.threshold) * self.half_over_span, 0.0, 1.0)
        return amap, score, normalized, score > self.threshold


def fused_from_checkpoint(model: ARDModel, metadata: dict) -> FusedARD:
    return FusedARD(model, float(metadata["threshold"]), float(metadata["score_stats"]["min"]))
