"""Evaluate a checkpoint on a labelled test set: image/pixel AUROC, PRO, F1 per defect type."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ard_edge.metrics import ImageResult, evaluation_report
from ard_edge.model import load_checkpoint
from ard_edge.training._data import load_test_set
from ard_edge.training.inference import predict_batches


def evaluate(
    checkpoint: str | Path,
    data: str | Path,
    batch_size: int = 16,
    device: str = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> dict:
    """The evaluation report of ``checkpoint`` on ``data``/test at the stored threshold."""
    model, header = load_checkpoint(checkpoint)
    model.to(device)
    test = load_test_set(data, model.config.image_size)
    results, offset = [], 0
    for maps, scores in predict_batches(model, test.images, batch_size, device):
        for i in range(len(scores)):
            sample = test.samples[offset + i]
            results.append(
                ImageResult(sample.defect_type, sample.label, float(scores[i]), maps[i], test.masks[offset + i])
            )
        offset += len(scores)
        if on_batch:
            on_batch(len(scores))
    report = evaluation_report(results, float(header["threshold"]))
    report["checkpoint"] = str(checkpoint)
    report["data"] = str(data)
    report["model"] = header["model"]
    return report
