"""Metrics against independent computations on tiny hand-made cases."""

import json
import logging
import math

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ard_edge.errors import ConfigError, DataError
from ard_edge.metrics import (
    ImageResult,
    confusion_at,
    evaluation_report,
    f1_optimal_threshold,
    format_report_table,
    image_auroc,
    pixel_auroc,
    pro_score,
    threshold_for_false_reject_rate,
)


def pairwise_auroc(labels, scores):
    """Mann-Whitney by brute force: every (anomalous, good) pair, ties counting 1/2."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def brute_pro(masks, maps, max_fpr=0.3):
    """PRO straight from its definition: loop over thresholds, regions and pixels."""
    regions = []
    for index, mask in enumerate(masks):
        count, ids = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        regions += [(index, ids == k) for k in range(1, count)]
    num_good = sum(int((~m).sum()) for m in masks)
    points = [(0.0, 0.0)]
    for t in sorted({float(v) for a in maps for v in a.ravel()}, reverse=True):
        fp = sum(int(((a >= t) & ~m).sum()) for m, a in zip(masks, maps))
        overlaps = [((maps[i] >= t) & r).sum() / r.sum() for i, r in regions]
        points.append((fp / num_good, float(np.mean(overlaps))))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 >= max_fpr:
            break
        if x1 > max_fpr:
            y1 = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0)
            x1 = max_fpr
        area += (x1 - x0) * (y0 + y1) / 2
    return area / max_fpr


def test_image_auroc_matches_pairwise_count_with_ties():
    labels = [0, 0, 0, 1, 1, 0, 1, 1]
    scores = [0.1, 0.4, 0.4, 0.4, 0.9, 0.2, 0.3, 0.4]
    assert image_auroc(labels, scores) == pytest.approx(pairwise_auroc(labels, scores))
    assert image_auroc([0, 1], [0.2, 0.8]) == 1.0
    assert image_auroc([0, 1], [0.8, 0.2]) == 0.0


def test_auroc_of_one_class_is_nan_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert math.isnan(image_auroc([1, 1, 1], [0.1, 0.2, 0.3]))
        assert math.isnan(pixel_auroc([np.zeros((2, 2), bool)], [np.ones((2, 2), np.float32)]))
    assert "undefined" in caplog.text


def test_pixel_auroc_matches_pairwise_count_on_a_hand_case():
    masks = [np.array([[1, 0], [0, 0]], bool), np.array([[0, 0], [1, 1]], bool)]
    maps = [np.array([[0.9, 0.1], [0.5, 0.5]]), np.array([[0.2, 0.5], [0.5, 0.05]])]
    labels = np.concatenate([m.ravel() for m in masks]).astype(int)
    scores = np.concatenate([a.ravel() for a in maps])
    assert pixel_auroc(masks, maps) == pytest.approx(pairwise_auroc(labels, scores))


@pytest.mark.parametrize("defect_share", [0.1, 0.8])  # either class may be the one sorted
def test_pixel_auroc_matches_sklearn_with_many_ties(defect_share):
    rng = np.random.default_rng(1)
    masks = [rng.random((16, 16)) < defect_share for _ in range(5)]
    maps = [(rng.integers(0, 12, (16, 16)) + 3 * m).astype(np.float32) for m in masks]
    labels = np.concatenate([m.ravel() for m in masks])
    expected = roc_auc_score(labels, np.concatenate([a.ravel() for a in maps]))
    assert pixel_auroc(masks, maps) == pytest.approx(expected, abs=1e-12)


def test_pixel_auroc_rejects_mismatched_shapes():
    with pytest.raises(DataError, match="mask is .* but anomaly map is"):
        pixel_auroc([np.zeros((4, 4), bool)], [np.zeros((4, 5), np.float32)])


def test_pro_of_a_perfect_map_is_one():
    masks = [np.zeros((8, 8), bool), np.zeros((8, 8), bool)]
    masks[0][1:3, 1:4] = True
    masks[1][5:8, 0:2] = True
    maps = [m.astype(np.float32) for m in masks]
    assert pro_score(masks, maps) == pytest.approx(1.0)


def test_pro_of_a_constant_map_follows_the_diagonal():
    # One threshold flags everything: the curve is (0,0) -> (1,1), area to 0.3 is 0.045.
    masks = [np.zeros((6, 6), bool), np.zeros((6, 6), bool)]
    masks[0][0:2, 0:2] = True
    maps = [np.full((6, 6), 0.7, np.float32)] * 2
    assert pro_score(masks, maps) == pytest.approx(0.045 / 0.3)


def test_pro_averages_over_regions_not_pixels():
    # Region A (4 px) fully found at FPR 0, region B (12 px) scored like the background.
    # Curve (0,0) -> (0,0.5) -> (1,1): area to 0.3 = 0.3*0.5 + 0.5*0.3**2/2 = 0.1725.
    # Pixel averaging would give (0,0.25) instead and 0.091875 / 0.3.
    masks = [np.zeros((8, 8), bool), np.zeros((8, 8), bool)]
    masks[0][2:4, 2:4] = True
    masks[1][1:4, 2:6] = True
    maps = [masks[0].astype(np.float32), np.zeros((8, 8), np.float32)]
    assert pro_score(masks, maps) == pytest.approx(0.1725 / 0.3)


def test_pro_joins_diagonal_neighbours_into_one_region():
    # Two diagonal pixels form one 8-connected region: finding one of them is half of PRO.
    mask = np.zeros((5, 5), bool)
    mask[1, 1] = mask[2, 2] = True
    amap = np.zeros((5, 5), np.float32)
    amap[1, 1] = 1.0
    # Curve (0,0) -> (0,0.5) -> (1,1), as in the region-averaging case.
    assert pro_score([mask], [amap]) == pytest.approx(0.1725 / 0.3)


@pytest.mark.parametrize("max_fpr", [0.3, 0.05, 1.0])
def test_pro_matches_its_definition_on_random_maps_with_ties(max_fpr):
    rng = np.random.default_rng(7)
    masks = []
    for _ in range(3):
        mask = np.zeros((12, 12), bool)
        for _ in range(2):
            top, left = rng.integers(0, 9, size=2)
            mask[top : top + rng.integers(1, 4), left : left + rng.integers(1, 4)] = True
        masks.append(mask)
    # Coarse values (one decimal) so many pixels tie, defects higher on average.
    maps = [(rng.integers(0, 10, m.shape) + 4 * m * rng.random(m.shape)).round(1) for m in masks]
    assert pro_score(masks, maps, max_fpr) == pytest.approx(brute_pro(masks, maps, max_fpr), abs=1e-9)


def test_pro_without_defect_regions_is_nan():
    assert math.isnan(pro_score([np.zeros((4, 4), bool)], [np.ones((4, 4), np.float32)]))


def test_pro_rejects_a_bad_fpr_limit():
    with pytest.raises(ConfigError, match="max_fpr"):
        pro_score([np.ones((2, 2), bool)], [np.ones((2, 2))], max_fpr=0.0)


def test_confusion_uses_strictly_greater_than_threshold():
    labels = [1, 1, 1, 0, 0, 0, 0]
    scores = [0.9, 0.5, 0.2, 0.5, 0.4, 0.1, 0.6]
    # Anomalous when > 0.5: 0.9 (tp), 0.6 (fp); 0.5 stays good for both classes.
    assert confusion_at(labels, scores, 0.5) == {
        "tp": 1, "fp": 1, "tn": 3, "fn": 2, "precision": 0.5, "recall": 1 / 3, "f1": 0.4,
    }
    assert confusion_at(labels, scores, 1.0)["precision"] == 0.0  # nothing flagged


def test_f1_optimal_threshold_on_a_hand_case():
    labels = [0, 0, 1, 0, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    # > 0.2 flags 0.3..0.6: tp 3, fp 1 -> F1 6/7; > 0.4 flags 0.5, 0.6: tp 2, fn 1 -> F1 0.8.
    threshold, f1 = f1_optimal_threshold(labels, scores)
    assert (threshold, f1) == (pytest.approx(0.2), pytest.approx(6 / 7))
    assert confusion_at(labels, scores, threshold)["f1"] == pytest.approx(f1)


def test_f1_optimal_threshold_can_flag_everything():
    threshold, f1 = f1_optimal_threshold([1, 1, 0], np.array([0.5, 0.5, 0.5], np.float32))
    assert f1 == pytest.approx(0.8)
    # Still below the lowest score after the float32 round trip an engine makes.
    assert np.float32(0.5) > np.float32(threshold)


def test_f1_optimal_threshold_matches_a_search_over_all_scores():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 40)
    scores = rng.integers(0, 15, 40) + labels * 3.0
    best = max(confusion_at(labels, scores, t)["f1"] for t in np.append(scores, -1.0))
    assert f1_optimal_threshold(labels, scores)[1] == pytest.approx(best)


def test_false_reject_threshold_allows_one_of_two_hundred():
    good = np.random.default_rng(0).permutation(np.arange(200, dtype=np.float64))
    threshold = threshold_for_false_reject_rate(good, 0.005)
    assert threshold == 198.0
    assert int((good > threshold).sum()) == 1


@pytest.mark.parametrize(
    ("scores", "rate", "expected"),
    [
        ([1.0, 2.0, 3.0], 0.0, 3.0),  # nothing may be above: the highest score
        ([1.0, 2.0, 3.0], 0.34, 2.0),  # floor(1.02) = 1 above
        ([1.0, 2.0, 3.0], 0.33, 3.0),  # floor(0.99) = 0 above
        ([5.0, 5.0, 5.0, 1.0], 0.5, 5.0),  # ties: none above rather than cutting inside them
        (list(range(100)), 0.29, 70.0),  # 0.29 * 100 = 28.999...: still 29 above
    ],
)
def test_false_reject_threshold_boundaries(scores, rate, expected):
    threshold = threshold_for_false_reject_rate(scores, rate)
    assert threshold == expected
    assert sum(s > threshold for s in scores) <= math.floor(rate * len(scores) + 1e-9)


def test_false_reject_threshold_rejects_bad_input():
    with pytest.raises(ConfigError, match=r"must be in \[0, 1\)"):
        threshold_for_false_reject_rate([1.0], 1.0)
    with pytest.raises(DataError, match="no good scores"):
        threshold_for_false_reject_rate([], 0.01)


def _result(defect_type, score, mask_box=None, found=True):
    amap = np.zeros((8, 8), np.float32)
    mask = None
    if mask_box is not None:
        mask = np.zeros((8, 8), bool)
        mask[mask_box] = True
        amap[mask] = 1.0 if found else 0.0
    return ImageResult(defect_type, int(mask is not None), score, amap, mask)


def test_evaluation_report_per_type_and_overall():
    box = (slice(2, 4), slice(2, 4))
    results = [
        _result("good", 0.1), _result("good", 0.2), _result("good", 0.6),
        _result("crack", 0.9, box), _result("crack", 0.7, box),
        _result("stain", 0.3, box, found=False),
    ]
    report = evaluation_report(results, threshold=0.5)
    json.dumps(report, allow_nan=False)
    overall, crack, stain = report["overall"], report["per_type"]["crack"], report["per_type"]["stain"]
    assert (report["num_images"], report["num_good"], report["num_anomalous"]) == (6, 3, 3)
    assert (overall["tp"], overall["fp"], overall["tn"], overall["fn"]) == (2, 1, 2, 1)
    assert overall["threshold"] == 0.5
    expected_auroc = pairwise_auroc([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.6, 0.9, 0.7, 0.3])
    assert overall["image_auroc"] == pytest.approx(expected_auroc)
    assert crack["image_auroc"] == 1.0 and crack["pro"] == pytest.approx(1.0)
    assert crack["num_images"] == 2 and (crack["tp"], crack["fn"], crack["fp"]) == (2, 0, 1)
    assert stain["image_auroc"] == pytest.approx(2 / 3) and stain["recall"] == 0.0
    table = format_report_table(report)
    assert [line.split()[0] for line in table.splitlines()[1:4]] == ["crack", "stain", "overall"]
    assert "score > threshold" in table


def test_evaluation_report_turns_nan_into_none():
    report = evaluation_report([_result("good", 0.1), _result("good", 0.2)], threshold=0.5)
    assert report["overall"]["image_auroc"] is None and report["overall"]["pro"] is None
    assert report["per_type"] == {}
    assert "-" in format_report_table(report)


def test_evaluation_report_needs_masks_for_all_defects_or_none():
    zeros = np.zeros((4, 4), np.float32)
    with_mask = ImageResult("crack", 1, 0.9, zeros, np.ones((4, 4), bool))
    without = ImageResult("crack", 1, 0.8, zeros, None)
    good = ImageResult("good", 0, 0.1, zeros, None)
    with pytest.raises(DataError, match="anomalous but has no mask"):
        evaluation_report([with_mask, without, good], threshold=0.5)


def test_evaluation_report_without_any_mask_is_image_level():
    zeros = np.zeros((4, 4), np.float32)
    results = [ImageResult("other", 1, 0.9, zeros), ImageResult("good", 0, 0.1, zeros)]
    report = evaluation_report(results, threshold=0.5)
    assert report["overall"]["image_auroc"] == 1.0
    assert report["overall"]["pixel_auroc"] is None and report["overall"]["pro"] is None
