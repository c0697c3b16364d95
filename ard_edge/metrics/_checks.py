"""Input checks shared by the image-level metrics, failing with DataError."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ard_edge.errors import DataError


def as_labels(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """Return ``labels`` as a 1-D bool array (True = anomalous), rejecting values other than 0/1."""
    array = np.asarray(labels).ravel()
    if array.size and not np.isin(array, (0, 1)).all():
        raise DataError(f"labels must be 0 (good) or 1 (anomalous), got {np.unique(array)[:5]}")
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

