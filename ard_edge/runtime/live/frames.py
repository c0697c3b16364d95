"""Live frames as JPEG: rendered only when a viewer asks, at most ``max_fps`` per camera, on the server's thread."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from ard_edge.runtime.heatmap import render_overlay
from ard_edge.runtime.preprocess import crop_roi

if TYPE_CHECKING:
    from ard_edge.runtime.live.board import CameraView, Latest

_JPEG_QUALITY = 80
_MAX_WIDTH = 800  # wider frames are scaled down: a status page needs no more, and encoding stays cheap


@dataclasses.dataclass(frozen=True)
class _Encoded:
    seq: int
    encoded_s: float
    jpeg: bytes


class FrameEncoder:
    """The latest decided frame of each camera with its heatmap overlay (the predict/evidence renderer).

    One encoded frame per camera is cached: a request re-encodes only when a newer decision
    exists and ``1 / max_fps`` has passed since the last encoding, so any number of viewers
    costs at most ``max_fps`` encodings per camera and second.
    """

    def __init__(self, max_fps: float, count_encoded):
        self.min_interval_s = 1.0 / max_fps
        self._count_encoded = count_encoded  # called once per encoding (the /metrics counter)
        self._cache: dict[str, _Encoded] = {}

    def jpeg(self, camera: str, view: CameraView) -> bytes | None:
        """The camera's latest frame as JPEG; None before its first decision."""
        latest = view.latest
        cached = self._cache.get(camera)
        now_s = time.monotonic()
        if latest is None or latest.frame.error is not None:  # an unreadable replay file has no image
            return cached.jpeg if cached else None
        if cached is not None and (cached.seq == latest.seq or now_s - cached.encoded_s < self.min_interval_s):
            return cached.jpeg
        jpeg = _encode(latest, view.run.roi, view.run.threshold)
        self._cache[camera] = _Encoded(latest.seq, now_s, jpeg)
        self._count_encoded()
        return jpeg


def _encode(latest: Latest, roi, threshold: float) -> bytes:
    """BGR overlay of what the engine saw (the ROI), with the outline of map > threshold; no map for ERROR."""
    import cv2

    image = crop_roi(latest.frame.image, roi)
    if latest.result is not None:
        bgr = render_overlay(image, latest.result.anomaly_map[0, 0], threshold)
    else:
        bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.shape[2] == 1 else cv2.COLOR_RGB2BGR)
    if bgr.shape[1] > _MAX_WIDTH:
        scale = _MAX_WIDTH / bgr.shape[1]
        bgr = cv2.resize(bgr, (_MAX_WIDTH, round(bgr.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buffer.tobytes()
