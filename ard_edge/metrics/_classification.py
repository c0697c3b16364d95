"""Image-level decisions at a threshold, by the engine's rule: anomalous when score > threshold."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ard_edge.errors import ConfigError, DataError
from ard_edge.metrics._checks import as_labels, as_scores, paired

# rate * count can land just under an integer (0.29 * 100 = 28.999...); this nudge restores it.
_RATE_ROUNDING = 1e-9
_EULER_GAMMA = 0.5772156649015329


def confusion_at(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, threshold: float
) -> dict[str, float | int]:
    """Counts and rates when images with score > threshold are called anomalous.

    Returns a dict with tp, fp, tn, fn (ints) and precision, recall, f1 (floats; 0.0 where the
    denominator is zero, as scikit-learn's ``zero_division=0``).
    """
    labels = as_labels(labels)
    scores = as_scores(scores)
    paired(labels, scores)
    predicted = scores > threshold
    tp = int(np.count_nonzero(predicted & labels))
    fp = int(np.count_nonzero(predicted & ~labels))
    fn = int(np.count_nonzero(~predicted & labels))
    tn = int(labels.size - tp - fp - fn)
    return {
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def f1_optimal_threshold(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """Threshold with the best image F1 under ``score > threshold``, and that F1.

    Candidates are every distinct score (a score equal to the threshold counts as good) and one
    value just below the lowest score (everything anomalous). On ties the highest threshold wins,
    as it rejects the fewest parts.
    """
    labels = as_labels(labels)
    scores = as_scores(scores)
    paired(labels, scores)
    if labels.size == 0:
        raise DataError("no scores to choose an F1-optimal threshold from")
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # Index of the last image of each group of equal scores, highest score first.
    group_ends = np.flatnonzero(np.diff(sorted_scores, append=-np.inf))
    tp_above = np.concatenate(([0], np.cumsum(sorted_labels)[group_ends]))
    predicted_above = np.concatenate(([0], group_ends + 1))
    # Threshold j keeps the first j groups above it: the j-th distinct score, then below the minimum.
    # nextafter in the scores' own dtype, so the value survives a cast back to float32 in an engine.
    below_all = np.nextafter(sorted_scores[-1], sorted_scores.dtype.type(-np.inf))
    thresholds = np.append(sorted_scores[group_ends], below_all)
    num_anomalous = int(labels.sum())
    denominator = predicted_above + num_anomalous
    f1 = np.divide(2 * tp_above, denominator, out=np.zeros(denominator.shape), where=denominator > 0)
    best = int(np.argmax(f1))  # first maximum = highest threshold
    return float(thresholds[best]), float(f1[best])


def threshold_for_false_reject_rate(good_scores: Sequence[float] | np.ndarray, rate: float) -> float:
    """Smallest threshold that calls at most ``rate`` of the good images anomalous (score > threshold).

    With n good scores at most k = floor(rate * n) may lie above the threshold, so the answer is the
    (k+1)-th highest good score: e.g. rate 0.005 on 200 good scores returns the second highest
    score, leaving exactly one above it (fewer if scores tie). Rate 0 returns the highest score.
    """
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"false reject rate must be in [0, 1), got {rate}")
    scores = np.sort(as_scores(good_scores, "good scores"))[::-1]
    if scores.size == 0:
        raise DataError("no good scores to set the threshold from: hold out at least one good image")
    allowed_above = math.floor(rate * scores.size + _RATE_ROUNDING)
    return float(scores[allowed_above])


def fitted_tail_threshold(good_scores: Sequence[float] | np.ndarray, rate: float) -> float:
    """The (1 - ``rate``) quantile of a Gumbel law fitted to the good scores by their moments.

    An image score is the maximum of a map, and maxima follow a Gumbel law. A fit reads a rate
    that a few dozen held-out images cannot show (at 0.5% of 60 images the empirical quantile is
    just their maximum). Rate 0 has no finite quantile: the highest good score is returned.
    """
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"false reject rate must be in [0, 1), got {rate}")
    scores = as_scores(good_scores, "good scores")
    if scores.size < 2:
        raise DataError(f"need at least 2 good scores to fit the threshold's tail, got {scores.size}")
    if rate == 0.0:
        return float(scores.max())
    scale = float(scores.std()) * math.sqrt(6.0) / math.pi
    location = float(scores.mean()) - _EULER_GAMMA * scale
    return location - scale * math.log(-math.log1p(-rate))


def recall_at_false_reject_rate(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, rate: float
) -> float:
    """Share of anomalous images caught when the threshold lets ``rate`` of the good ones be rejected."""
    labels = as_labels(labels)
    scores = as_scores(scores)
    paired(labels, scores)
    if not labels.any() or labels.all():
        return float("nan")
    threshold = threshold_for_false_reject_rate(scores[~labels], rate)
    return float(np.count_nonzero(scores[labels] > threshold) / np.count_nonzero(labels))


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0
