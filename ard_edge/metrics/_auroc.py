"""Image- and pixel-level AUROC."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ard_edge.metrics._checks import as_labels, as_scores, paired
from ard_edge.metrics._pixels import PixelScores, split_pixels

log = logging.getLogger(__name__)

# Pixel queries per searchsorted call: bounds the int64 temporaries to ~32 MB each.
_CHUNK_PX = 1 << 22


def image_auroc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve of image scores against 0/1 labels; nan if only one class is present."""
    from sklearn.metrics import roc_auc_score  # the reference implementation the field compares to

    labels = as_labels(labels)
    scores = as_scores(scores)
    paired(labels, scores)
    num_anomalous = int(labels.sum())
    if _one_class(num_anomalous, labels.size - num_anomalous, "image AUROC"):
        return float("nan")
    return float(roc_auc_score(labels, scores))


def pixel_auroc(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray]) -> float:
    """AUROC over all pixels of all images: masks (bool HxW) against anomaly maps (same shape).

    Returns nan if the masks hold only defect or only good pixels.
    """
    return auroc_of_pixels(split_pixels(masks, maps))


def auroc_of_pixels(pixels: PixelScores) -> float:
    """Exact AUROC as the Mann-Whitney statistic: P(defect score > good score), ties counting 1/2.

    Equal to scikit-learn's ``roc_auc_score`` (the tests check it), but it sorts only the smaller
    class and binary-searches the other in chunks: on 409 maps of 256x256 sklearn took ~16 s and
    ~1 GB here, this ~2 s and a few tens of MB beyond the input.
    """
    num_defect, num_good = pixels.defect.size, pixels.good.size
    if _one_class(num_defect, num_good, "pixel AUROC"):
        return float("nan")
    if num_defect <= num_good:
        # For each good pixel: defect pixels above it, plus half of those tied with it.
        reference, queries = np.sort(pixels.defect), pixels.good
        left, right = _rank_sums(reference, queries)
        wins_x2 = 2 * num_defect * num_good - left - right
    else:
        # For each defect pixel: good pixels below it, plus half of those tied with it.
        reference, queries = np.sort(pixels.good), pixels.defect
        left, right = _rank_sums(reference, queries)
        wins_x2 = left + right
    return float(wins_x2 / (2.0 * num_defect * num_good))


def _rank_sums(reference: np.ndarray, queries: np.ndarray) -> tuple[int, int]:
    """Sum over queries of the count of reference values below (left) and not above (right) each."""
    left = right = 0
    last = reference.size - 1
    for start in range(0, queries.size, _CHUNK_PX):
        chunk = queries[start : start + _CHUNK_PX]
        below = np.searchsorted(reference, chunk, side="left")
        # Only queries equal to a reference value have ties; search those again instead of all.
        tied = reference[np.minimum(below, last)] == chunk
        num_ties = np.searchsorted(reference, chunk[tied], side="right") - below[tied]
        below_sum = int(below.sum())
        left += below_sum
        right += below_sum + int(num_ties.sum())
    return left, right


def _one_class(num_positive: int, num_negative: int, what: str) -> bool:
    """Log and return True when AUROC is undefined because a class is missing."""
    if num_positive and num_negative:
        return False
    log.warning(
        "%s is undefined: %d anomalous and %d good samples (needs both)", what, num_positive, num_negative
    )
    return True
