"""Turn a GenICam buffer into the uint8 HxWxC image a :class:`~ard_edge.camera.Frame` holds.

Every conversion returns new memory: the driver buffer is requeued (and overwritten) as soon
as the caller leaves ``with ia.fetch(...) as buffer``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ard_edge.errors import CameraError

# Unpacked 10/12/16-bit mono sits in the low bits of a little-endian uint16; shift to 8 bits.
_MONO16_SHIFT = {"Mono10": 2, "Mono12": 4, "Mono16": 8}
# Interleaved colour: (channels in the buffer, channel order to reach RGB).
_COLOR = {"RGB8": (3, (0, 1, 2)), "BGR8": (3, (2, 1, 0)), "RGBa8": (4, (0, 1, 2)), "BGRa8": (4, (2, 1, 0))}
# GenICam names a Bayer format after the 2x2 pattern at the top-left pixel; OpenCV's classic
# COLOR_Bayer<XY>2RGB codes name the pattern one pixel down and right (row 1, columns 1-2), so
# GenICam BayerRG (R G / G B) is OpenCV's BG. tests/test_camera_pixel_formats.py checks colours.
_BAYER_TO_CV2 = {"BayerRG8": "COLOR_BayerBG2RGB", "BayerGR8": "COLOR_BayerGB2RGB",
                 "BayerGB8": "COLOR_BayerGR2RGB", "BayerBG8": "COLOR_BayerRG2RGB"}

SUPPORTED_PIXEL_FORMATS: tuple[str, ...] = ("Mono8", *_MONO16_SHIFT, *_COLOR, *_BAYER_TO_CV2)


def channels_of(pixel_format: str) -> int:
    """Channels of the converted image: 1 for mono, 3 for colour and Bayer."""
    _check_supported(pixel_format)
    return 1 if pixel_format.startswith("Mono") else 3


def image_from_component(component: Any) -> np.ndarray:
    """Copy a harvesters ``Component2DImage`` (``buffer.payload.components[0]``) into an image."""
    return image_from_buffer(component.data, component.width, component.height, component.data_format)


def image_from_buffer(data: np.ndarray, width: int, height: int, pixel_format: str) -> np.ndarray:
    """Convert a 1-D buffer to a new uint8 HxWxC image (C=1 mono, C=3 RGB).

    Args:
        data: the raw pixels, as uint8 bytes or (for 10/12/16-bit mono) already as uint16.
            Rows may carry trailing padding; it is dropped.
        width: image width in pixels.
        height: image height in pixels.
        pixel_format: GenICam PFNC name, one of :data:`SUPPORTED_PIXEL_FORMATS`.

    Raises:
        CameraError: unsupported format or a buffer too small for ``width`` x ``height``.
    """
    _check_supported(pixel_format)
    data = np.asarray(data).reshape(-1)
    if pixel_format in _MONO16_SHIFT:
        if data.dtype == np.uint8:
            # GenICam transmits multi-byte pixels little-endian; an odd trailing byte is padding.
            data = data[: data.size - data.size % 2].view("<u2")
        pixels = _rows(data, width, height, 1, pixel_format)
        return np.minimum(pixels >> _MONO16_SHIFT[pixel_format], 255).astype(np.uint8)[..., None]
    data = data.view(np.uint8) if data.dtype != np.uint8 else data
    if pixel_format == "Mono8":
        return _rows(data, width, height, 1, pixel_format).copy()[..., None]
    if pixel_format in _COLOR:
        channels, order = _COLOR[pixel_format]
        pixels = _rows(data, width, height, channels, pixel_format).reshape(height, width, channels)
        return np.ascontiguousarray(pixels[..., list(order)])  # fancy indexing copies
    import cv2

    mosaic = np.ascontiguousarray(_rows(data, width, height, 1, pixel_format))
    return cv2.cvtColor(mosaic, getattr(cv2, _BAYER_TO_CV2[pixel_format]))


def _rows(data: np.ndarray, width: int, height: int, channels: int, pixel_format: str) -> np.ndarray:
    """View ``data`` as ``height`` rows of ``width * channels`` values, dropping row padding."""
    row = width * channels
    if width <= 0 or height <= 0 or data.size < row * height:
        raise CameraError(
            f"{pixel_format} buffer holds {data.size} values, too few for {width}x{height}"
            f" ({row * height} needed)"
        )
    if data.size == row * height:
        return data.reshape(height, row)
    if data.size % height == 0:  # padded rows: the producer pads every line equally
        return data.reshape(height, -1)[:, :row]
    return data[: row * height].reshape(height, row)  # trailing bytes after the image


def _check_supported(pixel_format: str) -> None:
    if pixel_format not in SUPPORTED_PIXEL_FORMATS:
        raise CameraError(
            f"unsupported pixel format {pixel_format!r}: supported are {', '.join(SUPPORTED_PIXEL_FORMATS)}"
        )
