"""The accuracy gate: FP32 and a lower precision (INT8, bf16, fp16) side by side on images the calibration never saw."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Union

import numpy as np

from ard_edge.calibration._images import frame_batches
from ard_edge.engines.base import Engine

_BATCH = 8  # frames per call when the model takes any batch size

# The gate's limits unless the caller sets them (the CLI shows these).
DEFAULT_MAX_AUROC_DROP = 0.01
DEFAULT_MIN_AGREEMENT = 0.99


# An ONNX file (run by ONNX Runtime) or a function that opens the engine to compare.
Model = Union[Path, Callable[[], Engine]]


def run_engine(
    model: Model, items: Sequence[tuple[Path, int]], on_batch: Callable[[int], None] | None = None
) -> dict[str, np.ndarray]:
    """Scores and decisions of one model on ``items``."""
    from ard_edge.engines.onnxruntime.runner import OnnxRuntimeEngine

    paths = [path for path, _ in items]
    scores, decisions = [], []
    # One engine at a time, closed before the next opens.
    with (model() if callable(model) else OnnxRuntimeEngine(model)) as engine:
        spec = engine.input_spec
        batch = spec.fixed_batch or _BATCH
        for frames, real in frame_batches(paths, spec, batch):
            result = engine.infer(frames)
            scores.append(result.score[:real])
            decisions.append(result.is_anomalous[:real])
            if on_batch:
                on_batch(real)
    return {
        "score": np.concatenate(scores),
        "is_anomalous": np.concatenate(decisions),
    }


def compare(
    fp32: dict[str, np.ndarray],
    int8: dict[str, np.ndarray],
    labels: np.ndarray,
    max_auroc_drop: float,
    min_agreement: float,
    candidate: str = "int8",
) -> dict:
    """The gate's numbers and verdict. ``auroc_drop`` is FP32 minus the candidate: positive means worse.

    The candidate's numbers keep the ``int8`` keys whatever its precision; ``candidate`` names it.
    """
    from ard_edge.metrics import image_auroc

    labels = np.asarray(labels, dtype=int)
    agreement = float(np.mean(fp32["is_anomalous"] == int8["is_anomalous"]))
    num_defective = int(labels.sum())
    auroc_fp32 = auroc_int8 = drop = None
    if 0 < num_defective < len(labels):
        auroc_fp32 = image_auroc(labels, fp32["score"])
        auroc_int8 = image_auroc(labels, int8["score"])
        drop = auroc_fp32 - auroc_int8
    reasons = []
    if agreement < min_agreement:
        flips = int(np.sum(fp32["is_anomalous"] != int8["is_anomalous"]))
        reasons.append(
            f"decisions agree on {agreement:.2%} of {len(labels)} images ({flips} flipped), "
            f"below --min-agreement {min_agreement:.2%}"
        )
    if drop is not None and drop > max_auroc_drop:
        reasons.append(
            f"image AUROC drops by {drop:.4f} ({auroc_fp32:.4f} -> {auroc_int8:.4f}), "
            f"more than --max-auroc-drop {max_auroc_drop:g}"
        )
    return {
        "status": "refused" if reasons else "passed",
        "candidate": candidate,
        "reasons": reasons,
        "num_images": len(labels),
        "num_good": len(labels) - num_defective,
        "num_defective": num_defective,
        "decision_agreement": agreement,
        "score_pearson": _pearson(fp32["score"], int8["score"]),
        "max_abs_score_diff": float(np.max(np.abs(fp32["score"] - int8["score"]))),
        # The scale the difference reads against: scores are sums of z-scores, not 0..1.
        "score_std_fp32": float(np.std(fp32["score"])),
        "image_auroc_fp32": auroc_fp32,
        "image_auroc_int8": auroc_int8,
        "auroc_drop": drop,
        "max_auroc_drop": max_auroc_drop,
        "min_agreement": min_agreement,
    }


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Correlation of two score vectors; 1.0 for identical constant vectors, None when undefined."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2:
        return None
    if a.std() == 0 or b.std() == 0:
        return 1.0 if np.array_equal(a, b) else None
    value = float(np.corrcoef(a, b)[0, 1])
    return None if math.isnan(value) else value
