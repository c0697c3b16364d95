"""Pixel scores split into defect and good pixels, the shared input of pixel AUROC and PRO."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np

from ard_edge.errors import DataError


class PixelScores(NamedTuple):
    """Anomaly-map values of all images, split by the ground truth."""

    defect: np.ndarray  # float32 scores of mask pixels
    defect_weights: np.ndarray  # float64, 1 / area of each defect pixel's region
    good: np.ndarray  # float32 scores of non-mask pixels
    num_regions: int  # 8-connected defect regions over all masks


def split_pixels(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray]) -> PixelScores:
    """Split every map by its mask (bool HxW, same shape) and weigh defect pixels by region area."""
    if len(masks) != len(maps):
        raise DataError(f"got {len(masks)} masks but {len(maps)} anomaly maps: pass one mask per map")
    defect, weights, good = [], [], []
    num_regions = 0
    for index, (mask, amap) in enumerate(zip(masks, maps)):
        mask = np.asarray(mask, bool)
        # float32 keeps ~400 maps of 256x256 near 100 MB; the metrics only need the ordering.
        amap = np.asarray(amap, np.float32)
        if mask.shape != amap.shape:
            raise DataError(
                f"image {index}: mask is {mask.shape} but anomaly map is {amap.shape}: "
                "resize the map to the mask size first"
            )
        if not np.isfinite(amap).all():
            raise DataError(f"image {index}: anomaly map contains NaN or infinity: check the model output")
        count, region_ids = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        areas_px = np.bincount(region_ids[mask], minlength=count)
        defect.append(amap[mask])
        weights.append(1.0 / areas_px[region_ids[mask]])
        good.append(amap[~mask])
        num_regions += count - 1  # component 0 is the background
    return PixelScores(
        defect=_concat(defect, np.float32),
        defect_weights=_concat(weights, np.float64),
        good=_concat(good, np.float32),
        num_regions=num_regions,
    )


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)
