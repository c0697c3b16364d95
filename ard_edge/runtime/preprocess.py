"""Frame -> engine input: ROI crop, then resize exactly as training did. Nothing else.

Normalization lives inside the exported graph, and the channel count is the camera's (a
mismatch is a start-up error, see :meth:`~ard_edge.engines.base.InputSpec.check_channels`), so
the host touches pixels only to crop and resample them.
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
        DataError: a bad frame: wrong dtype or layout, or an ROI outside it.
        EngineError: the frame's channel count does not fit the engine.
    """
    image = frame.image
    if image.dtype != np.uint8 or image.ndim != 3:
        raise DataError(f"frame {frame.frame_id}: expected uint8 HxWxC pixels, got {image.dtype} {image.shape}")
    spec.check_channels(image.shape[2], frame.pixel_format)
    resized = _resize_function()(crop_roi(image, roi), (spec.height, spec.width))
    if resized.ndim == 2:  # cv2 drops a single channel axis
        resized = resized[..., None]
    return np.ascontiguousarray(resized)

