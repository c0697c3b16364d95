"""Frame -> engine input: ROI crop, then resize exactly as training did. Nothing else.

Normalization lives inside the exported graph, and the channel count is the camera's (a
mismatch is a start-up error, see :func:`channel_mismatch_message`), so the host touches
pixels only to crop and resample them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from ard_edge.camera.frames import Frame
from ard_edge.engines.base import InputSpec
from ard_edge.errors import DataError

Roi = tuple[int, int, int, int]  # x, y, w, h in pixels


@functools.cache
def _resize_function() -> Callable[[np.ndarray, tuple[int, int]], np.ndarray]:
    """The project's one resize rule (``ard_edge.data.resize_image``), as training used it; loads cv2."""
    from ard_edge.data import resize_image

    return resize_image


def crop_roi(image: np.ndarray, roi: Roi | None) -> np.ndarray:
    """The ``[x, y, w, h]`` region of ``image`` (a view, no copy); the whole image when ``roi`` is None.

    Raises:
        DataError: the region does not fit inside the image.
    """
    if roi is None:
        return image
    x, y, w, h = roi
    height, width = image.shape[:2]
    if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
        raise DataError(f"roi [{x}, {y}, {w}, {h}] does not fit a {width}x{height} frame")
    return image[y : y + h, x : x + w]


def prepare_frame(frame: Frame, spec: InputSpec, roi: Roi | None = None) -> np.ndarray:
    """The HxWxC uint8 array the engine takes for ``frame``.

    Raises:
        DataError: a bad frame: wrong dtype or layout, wrong channel count, or an ROI outside it.
    """
    image = frame.image
    if image.dtype != np.uint8 or image.ndim != 3:
        raise DataError(f"frame {frame.frame_id}: expected uint8 HxWxC pixels, got {image.dtype} {image.shape}")
    if image.shape[2] != spec.channels:
        raise DataError(channel_mismatch_message(spec.channels, image.shape[2], frame.pixel_format))
    resized = _resize_function()(crop_roi(image, roi), (spec.height, spec.width))
    if resized.ndim == 2:  # cv2 drops a single channel axis
        resized = resized[..., None]
    return np.ascontiguousarray(resized)


def channel_mismatch_message(engine_channels: int, frame_channels: int, pixel_format: str | None) -> str:
    """Say what differs and both ways out: re-export the model or change the camera format."""
    fmt = f" ({pixel_format})" if pixel_format else ""
    return (
        f"the engine takes {engine_channels}-channel frames but the camera delivers {frame_channels}-channel"
        f" frames{fmt}: re-export the model with `ard-edge export --channels {frame_channels}`"
        f" or set the camera's pixel_format to a {_kind(engine_channels)} format"
    )


def _kind(channels: int) -> str:
    return "mono (e.g. Mono8)" if channels == 1 else "colour (e.g. RGB8, BayerRG8)"
