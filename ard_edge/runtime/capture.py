"""Build a training set from the line camera: frames -> ROI crop -> lossless PNG + one manifest.

The frames take the path ``run`` gives them up to the resize: the source converts the pixel
format, :func:`~ard_edge.runtime.preprocess.crop_roi` cuts the camera's ROI, and the crop is
saved as it is (training resizes it, as it resizes any image). Each image is written to a
temporary file and linked to a name nobody holds, so an existing image is never overwritten
and an interrupted capture leaves only whole images; the manifest (``capture.jsonl``, one JSON
object a line) gets each image's line right after it.

What is kept: with a triggered camera or an unpaced replay, every frame (one image per part);
with a free-running camera (or a paced replay), at most one per ``every_ms``. A frame identical
to the last one kept (a stopped belt) is skipped and counted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ard_edge._io import json_safe
from ard_edge.camera.frames import Frame, FrameSource
from ard_edge.errors import CameraDisconnected, CameraTimeout, ConfigError, EndOfStream, OutputError
from ard_edge.runtime.decision import iso_utc
from ard_edge.runtime.preprocess import Roi, crop_roi

log = logging.getLogger(__name__)

MANIFEST_NAME = "capture.jsonl"


@dataclasses.dataclass
class CaptureStats:
    """What a capture did: images saved, frames skipped as identical, frames passed over by ``every_ms``."""

    saved: int = 0
    identical: int = 0
    between: int = 0  # free-run frames that arrived before every_ms had passed
    errors: int = 0  # frames without an image (unreadable replay files)
    stop_reason: str = ""  # frames, end_of_stream, interrupted

    def line(self, out: Path) -> str:
        return (f"saved {self.saved} images to {out} ({MANIFEST_NAME} beside them); skipped {self.identical} identical"
                f" to the previous one, {self.between} between --every-ms, {self.errors} unreadable;"
                f" stopped by {self.stop_reason}")


def check_out_folder(out: Path, append: bool) -> None:
    """Refuse a folder that already holds files unless ``append`` (:class:`Capture` creates a missing one)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: not a folder")
    if out.is_dir() and any(out.iterdir()) and not append:
        raise ConfigError(f"--out {out} is not empty: add --append to add images to it, or choose an empty folder")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "camera"


class Capture:
    """Save ``frames`` images from ``source`` into ``out``; see the module docstring.

    Args:
        source: an open camera or replay.
        out: the folder, created when missing (the caller checks it with :func:`check_out_folder`).
        frames: how many images to save.
        every_ms: the least time between two images of a free-running source.
        roi: ``[x, y, w, h]``; the source's own ROI when None.
        on_saved: called after each saved image (a progress bar).
    """

    def __init__(self, source: FrameSource, out: Path, frames: int, every_ms: float = 500.0,
                 roi: Roi | None = None, on_saved: Callable[[CaptureStats], None] | None = None):
        if frames < 1:
            raise ConfigError(f"--frames must be >= 1, got {frames}")
        self.source = source
        self.out = Path(out)
        self.frames = frames
        self.every_s = every_ms / 1000.0 if source.drops_when_behind else 0.0
        self.roi = tuple(roi) if roi is not None else source.roi
        self.on_saved = on_saved
        self.stats = CaptureStats()
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"--out {out}: cannot create it ({exc.strerror or exc})") from exc
        self._prefix = _safe(source.name)
        self._next_index = self._first_free_index()
        self._last: np.ndarray | None = None
        self._last_kept_s = -float("inf")
        self._wall_offset_ns = time.time_ns() - time.monotonic_ns()
        self._stop = threading.Event()

    def stop(self) -> None:
        """End after the image being saved, if any (safe from a signal handler)."""
        self._stop.set()

    def run(self) -> CaptureStats:
        """Capture until ``frames`` images are saved, the replay ends, or Ctrl-C (what was saved stays)."""
        try:
            while self.stats.saved < self.frames:
                if self._stop.is_set():
                    self.stats.stop_reason = "interrupted"
                    return self.stats
                frame = self._next_frame()
                if frame is None:
                    return self.stats
                self._consider(frame)
            self.stats.stop_reason = "frames"
        except KeyboardInterrupt:
            self.stats.stop_reason = "interrupted"
        return self.stats

    def _next_frame(self) -> Frame | None:
        if self.source.trigger_mode == "software":
            self.source.trigger()  # one part, one image: we are the trigger
        while not self._stop.is_set():
            try:
                return self.source.fetch()
            except CameraTimeout:
                if self.source.trigger_mode == "software":
                    self.source.trigger()
            except CameraDisconnected as exc:
                log.warning("%s; waiting for it to come back", exc)
            except EndOfStream:
                self.stats.stop_reason = "end_of_stream"
                return None
        self.stats.stop_reason = "interrupted"
        return None

    def _consider(self, frame: Frame) -> None:
        if frame.error is not None:
            self.stats.errors += 1
            log.warning("%s: no image (%s)", frame.source or frame.camera, frame.error)
            return
        now_s = time.monotonic()
        if now_s - self._last_kept_s < self.every_s:
            self.stats.between += 1
            return
        image = crop_roi(frame.image, self.roi)
        if self._last is not None and self._last.shape == image.shape and np.array_equal(self._last, image):
            self.stats.identical += 1
            return
        self._save(frame, image)
        self._last, self._last_kept_s = image.copy(), now_s
        self.stats.saved += 1
        if self.on_saved is not None:
            self.on_saved(self.stats)

    def _first_free_index(self) -> int:
        pattern = re.compile(re.escape(self._prefix) + r"_(\d+)\.png$")
        taken = [int(m.group(1)) for p in self.out.iterdir() if (m := pattern.match(p.name))]
        return max(taken, default=-1) + 1

    def _save(self, frame: Frame, image: np.ndarray) -> None:
        import cv2

        pixels = image[..., 0] if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        ok, png = cv2.imencode(".png", pixels)
        if not ok:
            raise OutputError(f"{self.source.name}: frame {frame.frame_id} could not be encoded as PNG")
        path = self._write_new(png.tobytes())
        record = {
            "file": path.name, "camera": frame.camera, "frame_id": frame.frame_id,
            "timestamp": frame.timestamp_ns, "received": iso_utc(frame.received_ns + self._wall_offset_ns),
            "pixel_format": frame.pixel_format, "exposure_us": self.source.exposure_us,
            "width": int(image.shape[1]), "height": int(image.shape[0]),
            "roi": list(self.roi) if self.roi is not None else None, "source": frame.source,
            "device": self.source.device_info,
        }
        self._append_manifest(json.dumps(json_safe(record), allow_nan=False) + "\n")

    def _write_new(self, data: bytes) -> Path:
        """Write ``data`` under the next free name: link a finished temporary file, never replace one."""
        tmp = self.out / f".{self._prefix}.{os.getpid()}.tmp"
        try:
            tmp.write_bytes(data)
            while True:
                path = self.out / f"{self._prefix}_{self._next_index:06d}.png"
                self._next_index += 1
                try:
                    os.link(tmp, path)
                    return path
                except FileExistsError:
                    continue  # someone else took this name since we looked
        except OSError as exc:
            raise OutputError(f"{self.out}: cannot save an image ({exc.strerror or exc})") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def _append_manifest(self, line: str) -> None:
        try:
            fd = os.open(self.out / MANIFEST_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, line.encode())  # one write: a line is whole or absent
            finally:
                os.close(fd)
        except OSError as exc:
            raise OutputError(f"{self.out / MANIFEST_NAME}: cannot write ({exc.strerror or exc})") from exc
