"""Anomaly-detection metrics: image/pixel AUROC, PRO, threshold choice and the evaluation report.

Every decision follows the engine's rule: an image is anomalous when ``score > threshold``.
"""

from ard_edge.metrics._auroc import image_auroc, pixel_auroc
from ard_edge.metrics._classification import (
    confusion_at,
    f1_optimal_threshold,
    fitted_tail_threshold,
    recall_at_false_reject_rate,
    threshold_for_false_reject_rate,
)
from ard_edge.metrics._pro import pro_score
from ard_edge.metrics._report import ImageResult, evaluation_report, format_report_table

__all__ = [
    "ImageResult",
    "confusion_at",
    "evaluation_report",
    "f1_optimal_threshold",
    "fitted_tail_threshold",
    "format_report_table",
    "image_auroc",
    "pixel_auroc",
    "pro_score",
    "recall_at_false_reject_rate",
    "threshold_for_false_reject_rate",
]
