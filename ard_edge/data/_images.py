"""Reading and resizing images and masks: the one place that decides how pixels are loaded.

Training, evaluation, predict and the camera runtime all go through :func:`resize_image`, so a
model always sees pixels resampled the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ard_edge._io import atomic_open
from ard_edge.errors import DataError

# Every file kind OpenCV decodes that cameras and datasets use; replays, predict and training share it.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp")

# Shrinking averages source pixels (INTER_AREA: no aliasing); enlarging interpolates (INTER_LINEAR).
RESIZE_INTERPOLATION = {"shrink": cv2.INTER_AREA, "enlarge": cv2.INTER_LINEAR}


def is_image_file(path: str | os.PathLike) -> bool:
    """True for visible files with a supported image extension (any letter case)."""
    name = Path(path).name
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: str | os.PathLike, mono_as_rgb: bool = True) -> np.ndarray:
    """Read an image file as uint8 RGB HxWx3; a gray file as HxWx1 instead when not ``mono_as_rgb``.

    The one reader for training, calibration, predict and replays, so all of them see the same
    pixels: 16-bit samples are scaled to 8 bits (``round(x / 257)``), alpha is dropped.
    """
    raw = _decode(path, cv2.IMREAD_UNCHANGED)
    if raw.dtype == np.uint16:
        raw = np.round(raw / 257.0).astype(np.uint8)  # 65535 / 255 = 257
    elif raw.dtype != np.uint8:
        raise DataError(f"{path}: {raw.dtype} pixels are not supported: save it as 8- or 16-bit")
    if raw.ndim == 2 or raw.shape[2] in (1, 2):  # gray, or gray + alpha
        gray = raw if raw.ndim == 2 else np.ascontiguousarray(raw[:, :, 0])
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB) if mono_as_rgb else gray[..., None]
    return cv2.cvtColor(raw, cv2.COLOR_BGR2RGB if raw.shape[2] == 3 else cv2.COLOR_BGRA2RGB)


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write ``image`` (HxW, HxWx1 or BGR HxWx3) as a PNG, atomically: a crash never leaves a truncated file.

    Encoding in memory first also handles non-ASCII paths, which ``cv2.imwrite`` does not everywhere.
    """
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise DataError(f"cannot encode {path} as PNG")
    with atomic_open(path, "wb") as handle:
        handle.write(encoded.tobytes())


def read_mask(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a ground-truth mask as bool HxW, resized to ``size`` (h, w) with nearest interpolation.

    A pixel is defective above half the mask's maximum, so 0/255, 0/1 and lightly compressed masks
    all read the same.
    """
    raw = _decode(path, cv2.IMREAD_GRAYSCALE)
    mask = raw.astype(np.uint16) * 2 > int(raw.max())
    return mask if size is None else resize_mask(mask, size)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a bool HxW mask to ``size`` (h, w) with nearest interpolation, so it stays binary."""
    height, width = size
    if mask.shape == (height, width):
        return mask
    resized = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    return resized.astype(bool)


def interpolation_for(source_hw: tuple[int, int], target_hw: tuple[int, int]) -> int:
    """The cv2 interpolation flag for resizing source_hw to target_hw: area if either side shrinks."""
    shrinks = target_hw[0] < source_hw[0] or target_hw[1] < source_hw[1]
    return RESIZE_INTERPOLATION["shrink" if shrinks else "enlarge"]


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an HxW or HxWxC image to ``size`` (h, w) with the project's one interpolation rule."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    flag = interpolation_for(image.shape[:2], (height, width))
    return cv2.resize(image, (width, height), interpolation=flag)


def _decode(path: str | os.PathLike, flags: int) -> np.ndarray:
    """Decode an image file; reading bytes first lets cv2 handle non-ASCII paths on Windows too."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise DataError(f"cannot decode {path}: not a readable {'/'.join(IMAGE_EXTENSIONS)} image")
    return image


def engine_frame(image_rgb: np.ndarray, size: tuple[int, int], channels: int) -> np.ndarray:
    """An RGB image as a camera delivers it to an engine: uint8 HxWxC at ``size`` (h, w).

    Mono engines (``channels`` 1) get the image's luminance; training, calibration and
    ``predict`` all feed files through this one function.
    """
    frame = resize_image(image_rgb, size)
    if channels == 1:
        frame = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[..., None]
    return frame
