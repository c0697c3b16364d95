"""The MVTec AD folder layout: ``train/good``, ``test/<type>``, ``ground_truth/<type>/<stem>_mask.png``."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from ard_edge.data._images import is_image_file, read_image, read_mask, resize_image, resize_mask
from ard_edge.errors import ConfigError, DataError

log = logging.getLogger(__name__)

GOOD = "good"
LAYOUT_HINT = "expected MVTec AD layout train/good, test/<type>, ground_truth/<type>"


@dataclass(frozen=True)
class Sample:
    """One image of the dataset, before any pixel is read."""

    path: Path
    defect_type: str  # "good" for normal images
    label: int  # 0 good, 1 anomalous
    mask_path: Path | None  # None for good images, and for all images of an image-level dataset


class LoadedSample(NamedTuple):
    """One image with its pixels; a NamedTuple of arrays, ints and strings so batches collate."""

    image: np.ndarray  # uint8 RGB HxWx3
    mask: np.ndarray  # bool HxW, all False for good images
    label: int
    defect_type: str
    path: str


def list_samples(root: str | os.PathLike, split: Literal["train", "test"]) -> list[Sample]:
    """List the images of one split in sorted, deterministic order, each defect with its mask."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset root not found: {root}")
    if split == "train":
        return [Sample(path, GOOD, 0, None) for path in _images_in(root / "train" / GOOD, required=True)]
    if split == "test":
        return _test_samples(root)
    raise ConfigError(f"split must be 'train' or 'test', got {split!r}")


class MVTecDataset:
    """Images of one split of an MVTec AD folder, resized to ``image_size`` (h, w) when loaded."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: Literal["train", "test"] = "train",
        image_size: tuple[int, int] = (256, 256),
    ):
        self.root = Path(root)
        self.split = split
        self.image_size = tuple(image_size)
        self.samples = list_samples(self.root, split)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> LoadedSample:
        return load_sample(self.samples[index], self.image_size)


def load_sample(sample: Sample, image_size: tuple[int, int]) -> LoadedSample:
    """Read a sample's image and mask at ``image_size`` (h, w)."""
    image = read_image(sample.path)
    if sample.mask_path is None:
        mask = np.zeros(image_size, bool)
    else:
        mask = read_mask(sample.mask_path)
        if mask.shape != image.shape[:2]:
            raise DataError(
                f"mask {sample.mask_path} is {mask.shape[1]}x{mask.shape[0]} but image {sample.path} "
                f"is {image.shape[1]}x{image.shape[0]}: a mask must match its image's size"
            )
        mask = resize_mask(mask, image_size)
    return LoadedSample(
        image=resize_image(image, image_size),
        mask=mask,
        label=sample.label,
        defect_type=sample.defect_type,
        path=str(sample.path),
    )


def _test_samples(root: Path) -> list[Sample]:
    test_dir = root / "test"
    if not test_dir.is_dir():
        raise DataError(f"no test set: {test_dir} does not exist ({LAYOUT_HINT}); evaluation needs it")
    # Without a ground_truth folder the dataset has image-level labels only (e.g. one-class novelty
    # detection): defect images get no mask and evaluation skips the pixel metrics. A ground_truth
    # folder that lacks some masks is still an error: that is a broken dataset, not a choice.
    image_level = not (root / "ground_truth").is_dir()
    if image_level:
        log.info("%s has no ground_truth/ folder: image-level labels only", root)
    samples, missing = [], []
    for type_dir in sorted(p for p in test_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        defect_type = type_dir.name
        masks = _mask_index(root / "ground_truth" / defect_type)
        for path in _images_in(type_dir, required=False):
            if defect_type == GOOD:
                samples.append(Sample(path, GOOD, 0, None))
                continue
            mask_path = masks.get(f"{path.stem}_mask") or masks.get(path.stem)
            if mask_path is None and not image_level:
                missing.append(path)
            samples.append(Sample(path, defect_type, 1, mask_path))
    if missing:
        first = missing[0]
        expected = root / "ground_truth" / first.parent.name / f"{first.stem}_mask.png"
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"no mask for defect image {first}{more}: expected {expected}")
    if not samples:
        raise DataError(f"no images in {test_dir}: {LAYOUT_HINT}")
    return samples


def _images_in(directory: Path, required: bool) -> list[Path]:
    """Image files directly in ``directory``, sorted by name."""
    images = []
    if directory.is_dir():
        images = sorted(p for p in directory.iterdir() if p.is_file() and is_image_file(p))
    if required and not images:
        raise DataError(f"no images in {directory}: {LAYOUT_HINT}")
    return images


def _mask_index(directory: Path) -> dict[str, Path]:
    """Mask files of one defect type by stem; with several extensions the first in name order wins."""
    index: dict[str, Path] = {}
    for path in _images_in(directory, required=False):
        index.setdefault(path.stem, path)
    return index
