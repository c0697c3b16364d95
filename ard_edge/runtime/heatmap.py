"""Heatmap overlays: the one renderer used by ``predict`` and by the streaming runtime."""

from __future__ import annotations

import numpy as np

# Map values are drawn on a fixed scale, threshold at mid-colour, so overlays of different
# images (and frames) are comparable at a glance.
_ALPHA = 0.45
_OUTLINE_BGR = (255, 255, 255)


def render_overlay(image: np.ndarray, anomaly_map: np.ndarray, threshold: float) -> np.ndarray:
    """Colour ``anomaly_map`` (HxW) over ``image`` (HxWx1|3 uint8 RGB) and outline map > threshold.

    Returns a BGR uint8 image ready for ``cv2.imwrite``; the map is resized to the image.
    """
    import cv2

    height, width = image.shape[:2]
    amap = np.asarray(anomaly_map, dtype=np.float32).reshape(anomaly_map.shape[-2:])
    if amap.shape != (height, width):
        amap = cv2.resize(amap, (width, height), interpolation=cv2.INTER_LINEAR)
    base = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 or image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    scaled = np.clip(amap / (2.0 * max(threshold, 1e-12)), 0.0, 1.0)
    colour = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_JET)
    overlay = cv2.addWeighted(colour, _ALPHA, base, 1.0 - _ALPHA, 0.0)
    region = (amap > threshold).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(overlay, contours, -1, _OUTLINE_BGR, max(1, round(min(height, width) / 200)))
    return overlay

