"""Input checks shared by the metrics: shapes and finiteness, failing with DataError."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ard_edge.errors import DataError


def as_labels(labels: Sequence[int] | np.ndarray, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 1-D bool array (True = anomalous), rejecting values other than 0/1."""
    array = np.asarray(labels).ravel()
    if array.size and not np.isin(array, (0, 1)).all():
        raise DataError(f"{name} must be 0 (good) or 1 (anomalous), got {np.unique(array)[:5]}")
    return array.astype(bool)


def as_scores(scores: Sequence[float] | np.ndarray, name: str = "scores") -> np.ndarray:
    """Return ``scores`` as a 1-D float array, rejecting NaN and infinity."""
    array = np.asarray(scores)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    array = array.ravel()
    if not np.isfinite(array).all():
        raise DataError(f"{name} contain NaN or infinity: check the model output")
    return array


def paired(labels: np.ndarray, scores: np.ndarray) -> None:
    """Fail unless there is one score per label."""
    if labels.shape != scores.shape:
        raise DataError(f"got {labels.size} labels but {scores.size} scores: pass one score per label")


def flatten_masks_and_maps(
    masks: Sequence[np.ndarray], maps: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-image masks (bool) and maps (float32) into two flat pixel arrays."""
    if len(masks) != len(maps):
        raise DataError(f"got {len(masks)} masks but {len(maps)} anomaly maps: pass one mask per map")
    for index, (mask, amap) in enumerate(zip(masks, maps)):
        if np.shape(mask) != np.shape(amap):
            raise DataError(
                f"image {index}: mask is {np.shape(mask)} but anomaly map is {np.shape(amap)}: "
                "resize the map to the mask size first"
            )
    if not masks:
        return np.zeros(0, bool), np.zeros(0, np.float32)
    # float32 keeps ~400 maps of 256x256 near 100 MB; the metrics only need the ranking.
    flat_masks = np.concatenate([np.asarray(m, bool).ravel() for m in masks])
    flat_maps = np.concatenate([np.asarray(a, np.float32).ravel() for a in maps])
    if not np.isfinite(flat_maps).all():
        raise DataError("anomaly maps contain NaN or infinity: check the model output")
    return flat_masks, flat_maps
