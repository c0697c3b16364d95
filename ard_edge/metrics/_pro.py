"""Per-region overlap (PRO): how much of each defect is found, averaged over defects, not pixels."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ard_edge.errors import ConfigError
from ard_edge.metrics._pixels import PixelScores, split_pixels

log = logging.getLogger(__name__)


def pro_score(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray], max_fpr: float = 0.3) -> float:
    """Area under the PRO-vs-FPR curve for FPR in [0, max_fpr], divided by max_fpr (perfect = 1.0).

    Regions are the 8-connected components of each mask (bool HxW). At threshold t a pixel counts
    as defective when its score >= t; PRO(t) is the mean over all regions of the fraction of the
    region found, FPR(t) the fraction of all good (mask 0) pixels of all images flagged. Every
    distinct score is a threshold (exact curve, no threshold grid). The curve is integrated with
    the trapezoid rule and cut at exactly ``max_fpr`` by linear interpolation.

    Returns nan when the masks hold no defect region or no good pixel.
    """
    return pro_of_pixels(split_pixels(masks, maps), max_fpr)


def pro_of_pixels(pixels: PixelScores, max_fpr: float = 0.3) -> float:
    """PRO area of :func:`pro_score` from pixels already split by the ground truth.

    Sort-based and exact: the curve only moves right at good-pixel scores, so only the good pixels
    within the top ``max_fpr`` fraction are sorted; each distinct value among them is one
    (possibly sloped) segment whose height comes from binary search in the sorted defect pixels.
    """
    if not 0.0 < max_fpr <= 1.0:
        raise ConfigError(f"PRO max_fpr must be in (0, 1], got {max_fpr}")
    if pixels.num_regions == 0 or pixels.good.size == 0:
        log.warning(
            "PRO is undefined: %d defect regions and %d good pixels (needs both)",
            pixels.num_regions, pixels.good.size,
        )
        return float("nan")
    values, counts = _top_good_values(pixels.good, max_fpr)
    above, tied = _region_share_above(pixels, values)
    # Segment g runs from good-count start[g] to start[g] + counts[g], rising by tied[g].
    start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    cut = max_fpr * pixels.good.size  # the FPR limit in good pixels
    width = np.clip(cut - start, 0, counts)
    # Trapezoid over the part of each segment left of the cut (linear inside a segment).
    area = width * (above + tied * width / (2 * counts))
    return float(area.sum() / pixels.good.size / max_fpr)


def _top_good_values(good: np.ndarray, max_fpr: float) -> tuple[np.ndarray, np.ndarray]:
    """Distinct good scores, highest first, with their counts, covering at least the top max_fpr."""
    needed = min(good.size, int(np.ceil(max_fpr * good.size)))
    lowest = np.partition(good, good.size - needed)[good.size - needed]
    values, counts = np.unique(good[good >= lowest], return_counts=True)
    return values[::-1], counts[::-1]


def _region_share_above(pixels: PixelScores, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per value: PRO from defect pixels strictly above it, and from those equal to it."""
    order = np.argsort(pixels.defect, kind="stable")
    sorted_scores = pixels.defect[order]
    # cumulative[i] = sum of the weights of the i lowest defect pixels.
    cumulative = np.concatenate(([0.0], np.cumsum(pixels.defect_weights[order])))
    total = cumulative[-1]
    not_above = cumulative[np.searchsorted(sorted_scores, values, side="right")]
    below = cumulative[np.searchsorted(sorted_scores, values, side="left")]
    return (total - not_above) / pixels.num_regions, (not_above - below) / pixels.num_regions
