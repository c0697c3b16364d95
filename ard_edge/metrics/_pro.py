"""Per-region overlap (PRO): how much of each defect is found, averaged over defects, not pixels."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cv2
import numpy as np

from ard_edge.errors import ConfigError
from ard_edge.metrics._checks import flatten_masks_and_maps

logger = logging.getLogger(__name__)


def pro_score(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray], max_fpr: float = 0.3) -> float:
    """Area under the PRO-vs-FPR curve for FPR in [0, max_fpr], divided by max_fpr (perfect = 1.0).

    Regions are the 8-connected components of each mask. At a threshold t a pixel is predicted
    defective when its score >= t; PRO(t) is the mean over all regions of the fraction of the region
    predicted defective, FPR(t) the fraction of all good (mask 0) pixels predicted defective.
    Every distinct score is a threshold (exact curve, no threshold grid). The curve is integrated
    with the trapezoid rule and cut at exactly ``max_fpr`` by linear interpolation.

    Returns nan when the masks hold no defect region or no good pixel.
    """
    if not 0.0 < max_fpr <= 1.0:
        raise ConfigError(f"max_fpr must be in (0, 1], got {max_fpr}")
    weights = _region_weights(masks)
    flat_masks, flat_maps = flatten_masks_and_maps(masks, maps)
    num_regions_weight = weights.sum()
    if num_regions_weight == 0 or flat_masks.all():
        logger.warning("PRO is undefined: needs at least one defect region and one good pixel")
        return float("nan")
    fpr, pro = _pro_curve(flat_masks, flat_maps, weights)
    return _area_up_to(fpr, pro, max_fpr) / max_fpr


def _region_weights(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Per pixel, 1 / area of its defect region (0 on good pixels), flattened over all images."""
    weights = []
    for mask in masks:
        mask_u8 = np.asarray(mask, dtype=np.uint8)
        num_labels, region_ids = cv2.connectedComponents(mask_u8, connectivity=8)
        areas_px = np.bincount(region_ids.ravel(), minlength=num_labels).astype(np.float64)
        inverse_area = np.zeros(num_labels)
        inverse_area[1:] = 1.0 / areas_px[1:]  # id 0 is the good background
        weights.append(inverse_area[region_ids.ravel()])
    return np.concatenate(weights) if weights else np.zeros(0)


def _pro_curve(
    flat_masks: np.ndarray, flat_maps: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (FPR, PRO) points at every distinct score, from one sort over all pixels.

    With each defect pixel weighted by 1 / its region's area, the weighted true-positive rate of a
    ROC curve is sum over regions of (found fraction) / number of regions: the PRO. So a weighted
    ``roc_curve`` gives the whole PRO curve exactly.
    """
    from sklearn.metrics import roc_curve

    sample_weight = np.where(flat_masks, weights, 1.0)
    fpr, pro, _ = roc_curve(flat_masks, flat_maps, sample_weight=sample_weight)
    return fpr, pro


def _area_up_to(fpr: np.ndarray, pro: np.ndarray, max_fpr: float) -> float:
    """Trapezoid area under (fpr, pro) from fpr 0 to ``max_fpr``, interpolating the end point."""
    from sklearn.metrics import auc

    # fpr is non-decreasing and ends at 1.0, so `end` < len(fpr) whenever max_fpr < 1.
    end = int(np.searchsorted(fpr, max_fpr, side="right"))
    xs, ys = fpr[:end], pro[:end]
    if end < fpr.size and xs[-1] < max_fpr:
        step = (max_fpr - fpr[end - 1]) / (fpr[end] - fpr[end - 1])
        xs = np.append(xs, max_fpr)
        ys = np.append(ys, pro[end - 1] + step * (pro[end] - pro[end - 1]))
    return float(auc(xs, ys))
