"""The evaluation report: every metric, overall and per defect type, as plain JSON-ready data."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ard_edge.errors import DataError
from ard_edge.metrics._auroc import auroc_of_pixels, image_auroc
from ard_edge.metrics._classification import confusion_at, f1_optimal_threshold, recall_at_false_reject_rate
from ard_edge.metrics._pixels import split_pixels
from ard_edge.metrics._pro import pro_of_pixels

# The escape rate a quality engineer asks for: defects caught when 1% of good parts are rejected.
REFERENCE_FALSE_REJECT_RATE = 0.01

_TABLE_COLUMNS = (
    # (header, key, format)
    ("images", "num_images", "d"),
    ("image AUROC", "image_auroc", ".4f"),
    ("pixel AUROC", "pixel_auroc", ".4f"),
    ("PRO", "pro", ".4f"),
    ("F1", "f1", ".4f"),
    ("recall", "recall", ".3f"),
    ("recall@1%FRR", "recall_at_1pct_frr", ".3f"),
    ("TP", "tp", "d"),
    ("FP", "fp", "d"),
    ("TN", "tn", "d"),
    ("FN", "fn", "d"),
)


@dataclass(frozen=True)
class ImageResult:
    """One scored test image."""

    defect_type: str  # "good" for normal images
    label: int  # 0 good, 1 anomalous
    score: float
    anomaly_map: np.ndarray  # HxW float32, same size as the mask
    mask: np.ndarray | None = None  # HxW bool ground truth; None for good images


def evaluation_report(results: Sequence[ImageResult], threshold: float, max_fpr: float = 0.3) -> dict:
    """Image AUROC, pixel AUROC, PRO, decisions at ``threshold`` and recall at a 1% false-reject
    rate (a threshold read off this set's good images), overall and per defect type.

    Each defect type is scored against all good images. Decisions use ``score > threshold``.
    Undefined values (e.g. AUROC without good images) are None, so the dict dumps to JSON as is.
    When no anomalous image has a mask (an image-level dataset), pixel AUROC and PRO are None;
    when only some have one, that is an error.
    """
    if not results:
        raise DataError("no images to evaluate: the test set is empty")
    image_level = all(r.mask is None for r in results if r.label == 1)
    masks = None if image_level else [_mask_of(result, index) for index, result in enumerate(results)]
    labels = np.array([result.label for result in results])
    good = labels == 0
    overall = _metrics(results, masks, np.ones(len(results), bool), threshold, max_fpr)
    optimal_threshold, optimal_f1 = f1_optimal_threshold(labels, [r.score for r in results])
    overall.update(
        threshold=float(threshold),
        f1_optimal_threshold=optimal_threshold,
        f1_optimal=optimal_f1,
    )
    defect_types = sorted({r.defect_type for r, is_good in zip(results, good) if not is_good})
    per_type = {}
    for defect_type in defect_types:
        of_type = np.array([r.defect_type == defect_type for r in results]) & ~good
        per_type[defect_type] = _metrics(results, masks, of_type | good, threshold, max_fpr)
        per_type[defect_type]["num_images"] = int(of_type.sum())
    return {
        "num_images": len(results),
        "num_good": int(good.sum()),
        "num_anomalous": int((~good).sum()),
        "overall": _json_ready(overall),
        "per_type": {name: _json_ready(row) for name, row in per_type.items()},
    }


def format_report_table(report: dict) -> str:
    """Render a report from :func:`evaluation_report` as an aligned plain-text table."""
    rows = [(name, row) for name, row in report["per_type"].items()]
    rows.append(("overall", report["overall"]))
    header = ["type"] + [title for title, _, _ in _TABLE_COLUMNS]
    cells = [[name] + [_cell(row.get(key), fmt) for _, key, fmt in _TABLE_COLUMNS] for name, row in rows]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]

    def line(values: list[str]) -> str:
        first = values[0].ljust(widths[0])
        return "  ".join([first] + [v.rjust(w) for v, w in zip(values[1:], widths[1:])])

    overall = report["overall"]
    footer = (
        f"threshold {_cell(overall['threshold'], '.6g')} (anomalous when score > threshold); "
        f"F1-optimal threshold {_cell(overall['f1_optimal_threshold'], '.6g')} "
        f"gives F1 {_cell(overall['f1_optimal'], '.4f')}"
    )
    return "\n".join([line(header), *(line(c) for c in cells), footer])


def _mask_of(result: ImageResult, index: int) -> np.ndarray:
    if result.mask is not None:
        return np.asarray(result.mask, bool)
    if result.label == 1:
        raise DataError(
            f"image {index} ({result.defect_type}) is anomalous but has no mask: "
            "pixel metrics need a ground-truth mask for every defect image"
        )
    return np.zeros(np.shape(result.anomaly_map), bool)


def _metrics(
    results: Sequence[ImageResult],
    masks: list[np.ndarray] | None,  # None: image-level labels only
    selected: np.ndarray,
    threshold: float,
    max_fpr: float,
) -> dict:
    chosen = np.flatnonzero(selected)
    labels = [results[i].label for i in chosen]
    scores = [results[i].score for i in chosen]
    row = {"num_images": int(chosen.size), "image_auroc": image_auroc(labels, scores),
           "pixel_auroc": float("nan"), "pro": float("nan")}
    if masks is not None:
        pixels = split_pixels([masks[i] for i in chosen], [results[i].anomaly_map for i in chosen])
        row.update(pixel_auroc=auroc_of_pixels(pixels), pro=pro_of_pixels(pixels, max_fpr))
    row.update(confusion_at(labels, scores, threshold))
    row["recall_at_1pct_frr"] = recall_at_false_reject_rate(labels, scores, REFERENCE_FALSE_REJECT_RATE)
    return row


def _json_ready(row: dict) -> dict:
    """Plain ints and floats, with nan turned into None."""
    ready = {}
    for key, value in row.items():
        if isinstance(value, (int, np.integer)):
            ready[key] = int(value)
        else:
            ready[key] = None if math.isnan(value) else float(value)
    return ready


def _cell(value: float | int | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)
