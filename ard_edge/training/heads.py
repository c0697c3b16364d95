"""Fit what the model scores with after training: the distillation map's per-scale normalization,
the memory bank, the global Gaussian and each head's z-score statistics.

The bank and the Gaussian see the training images; the normalization and the statistics see
only the held-out good images, which the student never trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from ard_edge.errors import DataError
from ard_edge.model import ARDModel
from ard_edge.model.anomaly_map import image_score, scale_distances
from ard_edge.model.heads import BANK_AUGMENTS


def fit_heads(
    model: ARDModel,
    features: list[torch.Tensor] | None,
    data,
    batch_size: int,
    device,
    coreset_progress: Callable[[int, int], None] | None = None,
) -> None:
    """Fit every head of ``model`` (in eval mode) in place; ``features`` are the cached train taps."""
    if model.bank is not None or model.gaussian is not None:
        _fit_feature_heads(model, _train_taps(model, features, data.train, batch_size, device),
                           _mirrored_taps(model, data.train, batch_size, device), coreset_progress)
    if model.decoder is not None:
        _fit_scales(model, data.holdout, batch_size, device)
    _fit_head_stats(model, data.holdout, batch_size, device)


def _fit_feature_heads(model: ARDModel, taps: Iterator[list[torch.Tensor]],
                       mirrored: Iterator[list[torch.Tensor]], progress) -> None:
    """The bank covers the training images and their ``mirrored`` copies; the Gaussian the images only."""
    patches, pooled = [], []
    with torch.no_grad():
        for batch in taps:
            if model.bank is not None:
                patches.append(_bank_vectors(model, batch))
            if model.gaussian is not None:
                pooled.append(model.gaussian.pool(batch).cpu())
        patches += [_bank_vectors(model, batch) for batch in mirrored]
    if model.bank is not None:
        model.bank.fit(torch.cat(patches), progress)
    if model.gaussian is not None:
        model.gaussian.fit(torch.cat(pooled))


def _bank_vectors(model: ARDModel, taps: list[torch.Tensor]) -> torch.Tensor:
    embedded = model.bank.embed(taps)
    return embedded.permute(0, 2, 3, 1).reshape(-1, embedded.shape[1]).cpu()


def _mirrored_taps(model: ARDModel, images: torch.Tensor, batch_size: int, device):
    """Teacher taps of the mirror copies of ``images`` that the bank also covers (``bank_augment``)."""
    mirrors = BANK_AUGMENTS[model.config.bank_augment] if model.bank is not None else ()
    for mirror in mirrors:
        yield from _train_taps(model, None, mirror(images), batch_size, device)


def _train_taps(model: ARDModel, features, images: torch.Tensor, batch_size: int, device):
    """Batches of the teacher's taps on the training images: from the cache, else computed."""
    for start in range(0, len(images), batch_size):
        if features is not None:
            yield [f[start : start + batch_size].float() for f in features]
        else:
            with torch.no_grad():
                yield [t.cpu() for t in model.teacher(model.preprocess(images[start : start + batch_size].to(device)))]


@torch.no_grad()
def _fit_scales(model: ARDModel, holdout: torch.Tensor, batch_size: int, device) -> None:
    per_scale = None
    for start in range(0, len(holdout), batch_size):
        distances = [d.cpu() for d in scale_distances(*model(holdout[start : start + batch_size].to(device)))]
        per_scale = [[d] for d in distances] if per_scale is None else [p + [d] for p, d in zip(per_scale, distances)]
    model.anomaly_map.fit_scales([torch.cat(p) for p in per_scale])


@torch.no_grad()
def _fit_head_stats(model: ARDModel, holdout: torch.Tensor, batch_size: int, device) -> None:
    if len(holdout) < 2:
        raise DataError(f"need at least 2 held-out good images to z-score the heads, got {len(holdout)}: "
                        "add good images or raise holdout_fraction")
    scores = {name: [] for name in model.config.heads}
    for start in range(0, len(holdout), batch_size):
        for name, output in model.head_outputs(holdout[start : start + batch_size].to(device)).items():
            scores[name].append(image_score(output) if output.dim() == 4 else output)
    for k, name in enumerate(model.config.heads):
        values = torch.cat(scores[name]).double()
        model.head_mean[k] = float(values.mean())
        model.head_std[k] = max(float(values.std()), 1e-6)
