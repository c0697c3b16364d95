"""Pixel-format conversion: every supported format, Bayer colours, copies, padding, errors."""

from types import SimpleNamespace

import numpy as np
import pytest

from ard_edge.camera import SUPPORTED_PIXEL_FORMATS, image_from_buffer, image_from_component
from ard_edge.errors import CameraError

H, W = 4, 6
RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def test_mono8_is_hxwx1_and_a_copy():
    data = np.arange(H * W, dtype=np.uint8)
    image = image_from_buffer(data, W, H, "Mono8")
    assert image.shape == (H, W, 1) and image.dtype == np.uint8
    assert image[1, 2, 0] == 1 * W + 2
    assert not np.shares_memory(image, data)  # the driver reuses its buffer right after


@pytest.mark.parametrize(("pixel_format", "bits"), [("Mono10", 10), ("Mono12", 12), ("Mono16", 16)])
def test_high_bit_mono_shifts_to_8_bits(pixel_format, bits):
    repeats = H * W // 4
    values = np.array([0, 1 << (bits - 8), (1 << bits) - 1, 1 << (bits - 1)] * repeats, dtype=np.uint16)
    expected = np.array([0, 1, 255, 128] * repeats, dtype=np.uint8).reshape(H, W, 1)
    as_uint16 = image_from_buffer(values, W, H, pixel_format)
    as_bytes = image_from_buffer(values.astype("<u2").view(np.uint8), W, H, pixel_format)  # what a raw buffer holds
    np.testing.assert_array_equal(as_uint16, expected)
    np.testing.assert_array_equal(as_bytes, expected)
    assert as_uint16.dtype == np.uint8


def test_out_of_range_high_bits_saturate_instead_of_wrapping():
    garbage = np.full(H * W, 0xFFFF, dtype=np.uint16)  # bits above 10 set: must not wrap to a dark pixel
    assert image_from_buffer(garbage, W, H, "Mono10").min() == 255


@pytest.mark.parametrize(
    ("pixel_format", "layout"),
    [("RGB8", RGB), ("BGR8", RGB[..., ::-1]),
     ("RGBa8", np.dstack([RGB, np.full((H, W), 7, np.uint8)])),
     ("BGRa8", np.dstack([RGB[..., ::-1], np.full((H, W), 7, np.uint8)]))],
)
def test_colour_formats_come_out_rgb(pixel_format, layout):
    data = np.ascontiguousarray(layout).reshape(-1)
    image = image_from_buffer(data, W, H, pixel_format)
    np.testing.assert_array_equal(image, RGB)
    assert image.flags.c_contiguous and not np.shares_memory(image, data)


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample ``rgb`` the way a sensor whose top-left 2x2 block reads ``pattern`` would."""
    channel = {"R": 0, "G": 1, "B": 2}
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    for k, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, channel[pattern[k]]]
    return mosaic


@pytest.mark.parametrize(("pixel_format", "pattern"),
                         [("BayerRG8", "RGGB"), ("BayerGR8", "GRBG"), ("BayerGB8", "GBRG"), ("BayerBG8", "BGGR")])
def test_bayer_demosaic_restores_known_colours(pixel_format, pattern):
    # Four flat colour tiles: inside a tile bilinear demosaicing is exact, so a swapped
    # pattern or R/B mix-up shows as a wrong colour.
    colours = np.array([[[200, 40, 10], [10, 180, 60]], [[30, 60, 220], [250, 250, 20]]], np.uint8)
    tile = 16
    rgb = np.kron(colours, np.ones((tile, tile, 1), np.uint8))
    image = image_from_buffer(_mosaic(rgb, pattern).reshape(-1), 2 * tile, 2 * tile, pixel_format)
    assert image.shape == (2 * tile, 2 * tile, 3)
    for ty in range(2):
        for tx in range(2):
            inner = image[ty * tile + 3:(ty + 1) * tile - 3, tx * tile + 3:(tx + 1) * tile - 3]
            assert np.abs(inner.astype(int) - colours[ty, tx]).max() <= 1, (pixel_format, ty, tx)


def test_padded_rows_are_dropped():
    padded = np.zeros((H, W + 2), np.uint8)
    padded[:, :W] = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    padded[:, W:] = 99  # row padding the producer appended
    image = image_from_buffer(padded.reshape(-1), W, H, "Mono8")
    np.testing.assert_array_equal(image[..., 0], np.arange(H * W).reshape(H, W))


def test_trailing_bytes_after_the_image_are_ignored():
    data = np.concatenate([np.arange(H * W, dtype=np.uint8), np.full(5, 99, np.uint8)])
    np.testing.assert_array_equal(image_from_buffer(data, W, H, "Mono8")[..., 0], np.arange(H * W).reshape(H, W))


def test_harvesters_like_component_is_converted():
    component = SimpleNamespace(data=RGB.reshape(-1).copy(), width=W, height=H, data_format="RGB8")
    np.testing.assert_array_equal(image_from_component(component), RGB)


def test_short_buffer_is_a_camera_error():
    with pytest.raises(CameraError, match=r"Mono8 buffer holds 5 values, too few for 6x4"):
        image_from_buffer(np.zeros(5, np.uint8), W, H, "Mono8")


def test_unknown_format_names_the_supported_ones():
    with pytest.raises(CameraError, match="unsupported pixel format 'YUV422_8'") as info:
        image_from_buffer(np.zeros(H * W * 2, np.uint8), W, H, "YUV422_8")
    assert all(name in str(info.value) for name in SUPPORTED_PIXEL_FORMATS)
