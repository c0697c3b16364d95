"""Calibration and gate images: which files, and the frames the engine would receive from them."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ard_edge.data import engine_frame, is_image_file, list_samples, read_image
from ard_edge.engines.base import InputSpec
from ard_edge.errors import DataError

LAYOUT_HINT = "expected DIR/train/good (MVTec AD layout) or a folder of good images"


@dataclasses.dataclass(frozen=True)
class ImageSplit:
    """Good images split into calibration and gate sets, plus the labelled test images, if any."""

    calibration: list[Path]
    held_out_good: list[Path]  # good images the ranges never saw
    test: list[tuple[Path, int]]  # (path, label 0 good / 1 defective) from DIR/test

    @property
    def gate(self) -> list[tuple[Path, int]]:
        return [(path, 0) for path in self.held_out_good] + self.test

    def fingerprint(self) -> str:
        """Identifies the calibration sample, so a cache is reused only for the same images."""
        digest = hashlib.sha256()
        for path in self.calibration:
            digest.update(f"{path.name}\0{path.stat().st_size}\n".encode())
        return digest.hexdigest()


def split_images(data_dir: str | Path, num_images: int, seed: int) -> ImageSplit:
    """Pick ``num_images`` good images for calibration (seeded) and keep the rest for the gate.

    At least a fifth of the good images (one, at least) stays out of calibration, so the gate
    always sees good images the ranges were not fitted on.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root} ({LAYOUT_HINT})")
    test: list[tuple[Path, int]] = []
    if (root / "train" / "good").is_dir():
        goods = [sample.path for sample in list_samples(root, "train")]
        if (root / "test").is_dir():
            test = [(sample.path, sample.label) for sample in list_samples(root, "test")]
    else:
        goods = sorted(p for p in root.iterdir() if p.is_file() and is_image_file(p))
        if not goods:
            raise DataError(f"no images in {root}: {LAYOUT_HINT}")
    keep = max(1, len(goods) // 5) if len(goods) >= 2 else 0
    count = min(num_images, len(goods) - keep)
    order = np.random.default_rng(seed).permutation(len(goods))
    calibration = sorted(goods[i] for i in order[:count])
    held_out = sorted(goods[i] for i in order[count:])
    return ImageSplit(calibration, held_out, test)


def frame_from_file(path: Path, height: int, width: int, channels: int) -> np.ndarray:
    """An image file as the camera would deliver it to the engine: uint8 HxWxC at engine size.

    Same pixels as ``ard-edge predict`` feeds (one reader, one resize rule); mono engines get
    the luminance of the RGB image.
    """
    return engine_frame(read_image(path), (height, width), channels)


def frame_batches(paths: Sequence[Path], spec: InputSpec, batch: int) -> Iterator[tuple[np.ndarray, int]]:
    """(frames, number of real frames) per batch of ``batch`` files, padded to the engine's ``min_batch``."""
    for start in range(0, len(paths), batch):
        frames = np.stack([frame_from_file(p, spec.height, spec.width, spec.channels) for p in paths[start : start + batch]])
        yield spec.pad(frames), len(frames)
