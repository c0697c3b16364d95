"""Batched PyTorch inference over in-memory images, shared by training and evaluation."""

from __future__ import annotations

import numpy as np
import torch

from ard_edge.model import ARDModel


@torch.no_grad()
def predict_batches(model: ARDModel, images: torch.Tensor, batch_size: int, device="cpu"):
    """Yield (anomaly maps (B, H, W) float32, scores (B,)) for uint8 NHWC ``images``."""
    model.eval()
    for start in range(0, len(images), batch_size):
        amap, score = model.predict(images[start : start + batch_size].to(device))
        yield amap[:, 0].cpu().numpy(), score.cpu().numpy()


def predict_scores(model: ARDModel, images: torch.Tensor, batch_size: int, device="cpu") -> np.ndarray:
    return np.concatenate([score for _, score in predict_batches(model, images, batch_size, device)])
