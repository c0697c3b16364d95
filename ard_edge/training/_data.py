"""Datasets in memory as uint8 NHWC tensors: the exact input of the fused graph."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from ard_edge.data import Sample, data_fingerprint, list_samples, load_sample, split_train_holdout


@dataclasses.dataclass(frozen=True)
class TrainImages:
    train: torch.Tensor  # uint8 (N, H, W, 3)
    holdout: torch.Tensor  # good images kept out of training to pick the threshold
    fingerprint: str


@dataclasses.dataclass(frozen=True)
class TestSet:
    samples: list[Sample]
    images: torch.Tensor  # uint8 (N, H, W, 3)
    masks: list[np.ndarray | None]  # bool (H, W) for defect images with a mask, else None


def count_train_images(root: str | Path, holdout_fraction: float) -> int:
    train, _ = split_train_holdout(list_samples(root, "train"), holdout_fraction)
    return len(train)


def load_train_images(root: str | Path, image_size: int, holdout_fraction: float, seed: int) -> TrainImages:
    train, holdout = split_train_holdout(list_samples(root, "train"), holdout_fraction, seed)
    return TrainImages(_stack(train, image_size), _stack(holdout, image_size), data_fingerprint(root))


def load_test_set(root: str | Path, image_size: int) -> TestSet:
    samples = list_samples(root, "test")
    loaded = [load_sample(s, (image_size, image_size)) for s in samples]
    images = torch.from_numpy(np.stack([item.image for item in loaded]))
    masks = [item.mask if s.mask_path is not None else None for s, item in zip(samples, loaded)]
    return TestSet(samples, images, masks)


def _stack(samples: list[Sample], image_size: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([load_sample(s, (image_size, image_size)).image for s in samples]))
