"""Holding out good training images: the threshold is set on images the model never trained on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from ard_edge.errors import ConfigError, DataError

T = TypeVar("T")


def split_train_holdout(
    samples: Sequence[T], holdout_fraction: float = 0.1, seed: int = 0
) -> tuple[list[T], list[T]]:
    """Split good samples into (train, held-out), deterministically for a seed.

    The held-out share is ``round(holdout_fraction * n)``, kept between 1 and n // 2; both lists
    keep the input order.
    """
    if not 0.0 <= holdout_fraction <= 0.5:
        raise ConfigError(f"holdout_fraction must be in [0, 0.5], got {holdout_fraction}")
    if len(samples) < 2:
        raise DataError(
            f"need at least 2 good training images to hold one out for the threshold, got {len(samples)}"
        )
    num_holdout = min(max(round(holdout_fraction * len(samples)), 1), len(samples) // 2)
    chosen = np.random.default_rng(seed).permutation(len(samples))[:num_holdout]
    is_holdout = np.zeros(len(samples), bool)
    is_holdout[chosen] = True
    train = [s for s, held in zip(samples, is_holdout) if not held]
    holdout = [s for s, held in zip(samples, is_holdout) if held]
    return train, holdout
