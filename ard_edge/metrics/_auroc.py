"""Image- and pixel-level AUROC, computed by scikit-learn (the reference the field compares to)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ard_edge.metrics._checks import as_labels, as_scores, flatten_masks_and_maps, paired

logger = logging.getLogger(__name__)


def image_auroc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve of image scores against 0/1 labels; nan if only one class is present."""
    labels = as_labels(labels)
    scores = as_scores(scores)
    paired(labels, scores)
    return _auroc(labels, scores, "image")


def pixel_auroc(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray]) -> float:
    """AUROC over all pixels of all images: masks (bool HxW) against anomaly maps (HxW).

    Returns nan if the masks hold only defect or only good pixels.
    """
    flat_masks, flat_maps = flatten_masks_and_maps(masks, maps)
    return _auroc(flat_masks, flat_maps, "pixel")


def _auroc(labels: np.ndarray, scores: np.ndarray, level: str) -> float:
    from sklearn.metrics import roc_auc_score

    num_anomalous = int(np.count_nonzero(labels))
    if num_anomalous in (0, labels.size):
        logger.warning(
            "%s AUROC is undefined: %d of %d %ss are anomalous (needs both classes)",
            level, num_anomalous, labels.size, level,
        )
        return float("nan")
    return float(roc_auc_score(labels, scores))
