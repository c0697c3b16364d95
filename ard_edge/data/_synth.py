"""A synthetic inspection dataset in MVTec AD layout: real textures with drawn defects and exact masks.

Backgrounds are random crops and flips of one scikit-image texture (brick, grass or gravel).
Test defects come in seven types. Four are local: thin scratches, small spots, soft low-contrast
stains and chunks of missing material. Three are global, with no local peak to find: a large
region of the wrong texture scale, a region or the whole image with changed contrast, and an
illumination gradient across the image. A mask pixel is exactly a pixel the defect changed by at least
``MIN_CHANGE_LEVELS`` gray levels; smaller changes are undone, so the mask never lies.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ard_edge.data._images import resize_image
from ard_edge.data._images import write_png as _write_png
from ard_edge.data._mvtec import GOOD
from ard_edge.errors import ConfigError, DataError

TEXTURES = ("brick", "grass", "gravel")
LOCAL_DEFECTS = ("scratch", "spot", "stain", "missing")
GLOBAL_DEFECTS = ("texture", "contrast", "gradient")
DEFECT_TYPES = LOCAL_DEFECTS + GLOBAL_DEFECTS
MIN_CHANGE_LEVELS = 8  # smaller changes are hard to see and are undone, so masks stay exact
MIN_IMAGE_SIZE = 32  # below this the smallest defects vanish
METADATA_NAME = "synth.json"
_DATASET_ENTRIES = {"train", "test", "ground_truth", METADATA_NAME}  # all an overwrite may remove
_CROP_FRACTION = 0.75  # crop side / texture side: room for random offsets, same scale everywhere
_MIN_DEFECT_PX = 6  # redraw a defect that changed fewer pixels than this
_MAX_ATTEMPTS = 100
_SPLIT_CODES = {"train": 0, "test": 1}  # part of each image's seed


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`write_synthetic_dataset` wrote."""

    out_dir: Path
    num_train: int
    num_test_good: int
    num_defects: dict[str, int]  # defect type -> test images
    image_size: tuple[int, int]  # (h, w)
    texture: str
    seed: int


@dataclass(frozen=True)
class _TestImage:
    defect_type: str  # "good" or one of DEFECT_TYPES
    name: str  # file stem within its type folder


def write_synthetic_dataset(
    out_dir: str | os.PathLike,
    num_train: int = 200,
    num_test: int = 60,
    image_size: int | tuple[int, int] = 256,
    seed: int = 0,
    texture: str = "brick",
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write a synthetic dataset to ``out_dir``; the same arguments give byte-identical files.

    About half the test images are good, the rest spread evenly over the four defect types.
    Everything is built in a temporary folder beside ``out_dir`` and renamed into place at the end.
    ``progress`` is called with 1 after each image.
    """
    size_hw = _check_arguments(num_train, num_test, image_size, seed, texture)
    out_dir = Path(out_dir)
    _check_target(out_dir, overwrite)
    source = load_texture(texture)
    plan = plan_test_set(num_test)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        _write_train(staging, source, num_train, size_hw, seed, progress)
        _write_test(staging, source, plan, size_hw, seed, progress)
        metadata = {
            "num_train": num_train,
            "num_test": num_test,
            "image_size": list(size_hw),
            "seed": seed,
            "texture": texture,
        }
        (staging / METADATA_NAME).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        _move_into_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SynthSummary(
        out_dir=out_dir,
        num_train=num_train,
        num_test_good=sum(item.defect_type == GOOD for item in plan),
        num_defects={t: sum(item.defect_type == t for item in plan) for t in DEFECT_TYPES},
        image_size=size_hw,
        texture=texture,
        seed=seed,
    )


def load_texture(texture: str) -> np.ndarray:
    """The named scikit-image texture as uint8 gray HxW."""
    from skimage import data  # imported here: slow, and only the generator needs it

    if texture not in TEXTURES:
        raise ConfigError(f"texture must be one of {', '.join(TEXTURES)}, got {texture!r}")
    return np.asarray(getattr(data, texture)(), dtype=np.uint8)


def plan_test_set(num_test: int) -> list[_TestImage]:
    """Test images in writing order: good first, then defects taking turns over the types."""
    num_defective = num_test // 2
    plan = [_TestImage(GOOD, f"{i:03d}") for i in range(num_test - num_defective)]
    for i in range(num_defective):
        plan.append(_TestImage(DEFECT_TYPES[i % len(DEFECT_TYPES)], f"{i // len(DEFECT_TYPES):03d}"))
    return plan


def render_test_image(
    source: np.ndarray, index: int, defect_type: str, size_hw: tuple[int, int], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Test image ``index`` as (clean background, image, mask): uint8, uint8, bool, all HxW."""
    rng = _rng(seed, "test", index)
    clean = render_background(source, rng, size_hw)
    if defect_type == GOOD:
        return clean, clean, np.zeros(size_hw, bool)
    image, mask = _add_defect(clean, defect_type, rng)
    return clean, image, mask


def render_background(
    source: np.ndarray, rng: np.random.Generator, size_hw: tuple[int, int]
) -> np.ndarray:
    """A random crop of the texture, maybe flipped, at size_hw, with a slight lighting change."""
    scale = _CROP_FRACTION * min(source.shape) / max(size_hw)
    crop_h, crop_w = round(size_hw[0] * scale), round(size_hw[1] * scale)
    top = int(rng.integers(0, source.shape[0] - crop_h + 1))
    left = int(rng.integers(0, source.shape[1] - crop_w + 1))
    crop = source[top : top + crop_h, left : left + crop_w]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        crop = crop[::-1, :]
    crop = resize_image(np.ascontiguousarray(crop), size_hw)
    gain = rng.uniform(0.95, 1.05)  # exposure drifts a little between shots on a real line
    return np.clip(np.round(crop * gain), 0, 255).astype(np.uint8)


def _add_defect(
    clean: np.ndarray, defect_type: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one defect; redraw while it changes too few pixels (e.g. a bright spot in a glare)."""
    draw = {"scratch": _scratch, "spot": _spot, "stain": _stain, "missing": _missing,
            "texture": _texture, "contrast": _contrast, "gradient": _gradient}[defect_type]
    base = clean.astype(np.float32)
    # Defects scale with the texture's own contrast; the floor keeps the faintest (a stain at
    # 0.6x) above MIN_CHANGE_LEVELS even on a flat crop.
    contrast = max(float(base.std()), 16.0)
    for _ in range(_MAX_ATTEMPTS):
        changed = np.clip(np.round(draw(base, contrast, rng)), 0, 255).astype(np.uint8)
        mask = np.abs(changed.astype(np.int16) - clean) >= MIN_CHANGE_LEVELS
        if mask.sum() >= _MIN_DEFECT_PX:
            return np.where(mask, changed, clean), mask
    raise DataError(f"could not draw a visible {defect_type} in {_MAX_ATTEMPTS} tries: is the texture flat?")


def _scratch(base: np.ndarray, contrast: float, rng: np.random.Generator) -> np.ndarray:
    """A thin bright or dark polyline of 2-3 segments."""
    side = min(base.shape)
    points = [_point_inside(base.shape, rng)]
    heading = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.integers(2, 4))):
        heading += rng.uniform(-0.6, 0.6)
        step = rng.uniform(0.1, 0.2) * side
        next_point = points[-1] + step * np.array([np.cos(heading), np.sin(heading)])
        points.append(np.clip(next_point, 2, np.array(base.shape[::-1]) - 3))
    thickness_px = max(1, round(side / 160))
    alpha = _draw(base.shape, lambda canvas: cv2.polylines(
        canvas, [np.round(np.array(points)).astype(np.int32)], False, 255, thickness_px, cv2.LINE_AA))
    return base + _signed(rng) * rng.uniform(1.3, 2.0) * contrast * alpha


def _spot(base: np.ndarray, contrast: float, rng: np.random.Generator) -> np.ndarray:
    """One to three small bright or dark blobs with slightly soft edges."""
    side = min(base.shape)
    sign, amplitude = _signed(rng), rng.uniform(1.5, 2.5) * contrast
    alpha = np.zeros(base.shape, np.float32)
    for _ in range(int(rng.integers(1, 4))):
        axes = np.maximum(1, np.round(rng.uniform(0.01, 0.025, size=2) * side)).astype(int)
        alpha = np.maximum(alpha, _draw(base.shape, lambda canvas: cv2.ellipse(
            canvas, tuple(_point_inside(base.shape, rng)), tuple(int(a) for a in axes),
            rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA)))
    return base + sign * amplitude * cv2.GaussianBlur(alpha, (0, 0), 0.8)


def _stain(base: np.ndarray, contrast: float, rng: np.random.Generator) -> np.ndarray:
    """A large, soft, low-contrast blob: the hardest type to see."""
    side = min(base.shape)
    axes = np.round(rng.uniform(0.06, 0.14, size=2) * side).astype(int)
    alpha = _draw(base.shape, lambda canvas: cv2.ellipse(
        canvas, tuple(_point_inside(base.shape, rng)), tuple(int(a) for a in axes),
        rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA))
    alpha = cv2.GaussianBlur(alpha, (0, 0), float(axes.min()) / 2)
    alpha /= max(float(alpha.max()), 1e-6)
    return base + _signed(rng) * rng.uniform(0.6, 1.0) * contrast * alpha


def _missing(base: np.ndarray, contrast: float, rng: np.random.Generator) -> np.ndarray:
    """An irregular chunk replaced by a flat dark value, as where material broke off."""
    side = min(base.shape)
    center = _point_inside(base.shape, rng)
    num_corners = int(rng.integers(5, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, num_corners))
    radii = rng.uniform(0.03, 0.08, num_corners) * side
    corners = center + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    alpha = _draw(base.shape, lambda canvas: cv2.fillPoly(
        canvas, [np.round(corners).astype(np.int32)], 255, cv2.LINE_AA))
    # Well below the texture's dark end, so every pixel of the chunk visibly changes.
    fill = max(0.0, float(np.percentile(base, 2)) - rng.uniform(0.8, 1.5) * contrast)
    return base * (1 - alpha) + fill * alpha


def _texture(base: np.ndarray, contrast: float, rng: np.random.Generator) -> np.ndarray:
    """A large region (or all) of the same material at 1.6-2.2x the texture's scale."""
    zoom = rng.uniform(1.6, 2.2)
    height, width = base.shape
    crop_h, crop_w = max(1, round(height / zoom)), max(1, round(width / zoom))
    top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
    coarse = cv2.resize(base[top : top + crop_h, left : left + crop_w], (width, height), interpolation=cv2.INTER_LINEAR)
    alpha = _large_region(base.shape, rng)
    return base * (1 - alpha) + coarse * alpha


def _contrast(base: np.ndarray, contrast: float, rng: np.random.Generator) -> np.ndarray:
    """A large region (or all) with its contrast around the mean scaled by 0.3-0.5x or 1.8-2.4x."""
    gain = rng.uniform(0.3, 0.5) if rng.random() < 0.5 else rng.uniform(1.8, 2.4)
    mean = float(base.mean())
    alpha = _large_region(base.shape, rng)
    return base + alpha * (gain - 1.0) * (base - mean)


def _gradient(base: np.ndarray, contrast: float, rng: np.random.Generator) -> np.ndarray:
    """An illumination ramp across the whole image: one side 35-60% darker or brighter."""
    height, width = base.shape
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (np.cos(angle) * (x / max(width - 1, 1)) + np.sin(angle) * (y / max(height - 1, 1)))
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)  # 0 at one side, 1 at the other
    return base * (1.0 + _signed(rng) * rng.uniform(0.35, 0.6) * ramp)


def _large_region(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Coverage of a soft-edged ellipse over 30-60% of each side, or of the whole image (1 in 3)."""
    if rng.random() < 1 / 3:
        return np.ones(shape, np.float32)
    side = min(shape)
    axes = np.round(rng.uniform(0.15, 0.3, size=2) * side).astype(int)
    alpha = _draw(shape, lambda canvas: cv2.ellipse(
        canvas, tuple(_point_inside(shape, rng)), tuple(int(a) for a in axes),
        rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA))
    return cv2.GaussianBlur(alpha, (0, 0), max(1.0, side / 64))


def _draw(shape: tuple[int, int], paint: Callable[[np.ndarray], object]) -> np.ndarray:
    """Run a cv2 drawing call on a black uint8 canvas; return its coverage as float32 in [0, 1]."""
    canvas = np.zeros(shape, np.uint8)
    paint(canvas)
    return canvas.astype(np.float32) / 255.0


def _point_inside(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random (x, y) point away from the borders, so defects are not cut off."""
    height, width = shape
    return np.array([rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height]).round().astype(int)


def _signed(rng: np.random.Generator) -> float:
    return 1.0 if rng.random() < 0.5 else -1.0


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    """One generator per image, so an image does not depend on how many came before it."""
    return np.random.default_rng([seed, _SPLIT_CODES[split], index])


def _write_train(
    staging: Path,
    source: np.ndarray,
    num_train: int,
    size_hw: tuple[int, int],
    seed: int,
    progress: Callable[[int], None] | None,
) -> None:
    good_dir = staging / "train" / GOOD
    good_dir.mkdir(parents=True)
    for index in range(num_train):
        image = render_background(source, _rng(seed, "train", index), size_hw)
        _write_png(good_dir / f"{index:03d}.png", image)
        if progress:
            progress(1)


def _write_test(
    staging: Path,
    source: np.ndarray,
    plan: list[_TestImage],
    size_hw: tuple[int, int],
    seed: int,
    progress: Callable[[int], None] | None,
) -> None:
    for index, item in enumerate(plan):
        _, image, mask = render_test_image(source, index, item.defect_type, size_hw, seed)
        _write_png(staging / "test" / item.defect_type / f"{item.name}.png", image)
        if item.defect_type != GOOD:
            mask_u8 = mask.astype(np.uint8) * 255
            _write_png(staging / "ground_truth" / item.defect_type / f"{item.name}_mask.png", mask_u8)
        if progress:
            progress(1)


def _check_arguments(
    num_train: int, num_test: int, image_size: int | tuple[int, int], seed: int, texture: str
) -> tuple[int, int]:
    """Validate the generator's arguments; return image_size as (h, w)."""
    size_hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size_hw) != 2 or min(size_hw) < MIN_IMAGE_SIZE:
        raise ConfigError(f"image_size must be at least {MIN_IMAGE_SIZE} pixels per side, got {image_size}")
    if num_train < 1 or num_test < 0:
        raise ConfigError(f"need num_train >= 1 and num_test >= 0, got {num_train} and {num_test}")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    if texture not in TEXTURES:
        raise ConfigError(f"texture must be one of {', '.join(TEXTURES)}, got {texture!r}")
    return size_hw


def _check_target(out_dir: Path, overwrite: bool) -> None:
    """Refuse a non-empty out_dir unless overwrite, and never replace a folder that is not a dataset."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir} exists and is not a directory: choose another output path")
    entries = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else []
    if not entries:
        return
    if not overwrite:
        raise DataError(f"{out_dir} is not empty: pass --overwrite (overwrite=True) to replace it")
    foreign = [name for name in entries if name not in _DATASET_ENTRIES]
    if foreign:
        raise DataError(
            f"refusing to replace {out_dir}: it holds {foreign[0]!r}, which is not part of a "
            "synthetic dataset; choose an empty or new directory"
        )


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename the finished dataset onto out_dir, replacing an existing one only after it is complete."""
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
    try:
        os.rename(out_dir, trash / "old")
        try:
            os.rename(staging, out_dir)
        except OSError:
            os.rename(trash / "old", out_dir)  # put the previous dataset back
            raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)
