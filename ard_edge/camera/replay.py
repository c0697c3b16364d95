"""Replay sources: a folder of images or a video file, behind the same interface as a camera.

Frames carry ``source`` (the file, or ``video#index``) so decisions map back to their inputs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ard_edge.camera.frames import Frame, FrameSource
from ard_edge.errors import CameraError, CameraTimeout, DataError, EndOfStream

log = logging.getLogger(__name__)

_NO_IMAGE = np.zeros((0, 0, 1), np.uint8)  # the image of a frame whose file could not be read


class _Unreadable(Exception):
    """A replay file that cannot be decoded; its frame carries the message instead of an image."""

    def __init__(self, message: str, source: str):
        super().__init__(message)
        self.source = source


class _ReplaySource(FrameSource):
    """Pacing, looping and counters shared by the replay sources."""

    def __init__(self, path: str | Path, name: str, fps: float | None = None, loop: bool = False):
        if fps is not None and fps <= 0:
            raise CameraError(f"{name}: fps must be positive, got {fps}")
        super().__init__(name)
        self.path = Path(path).expanduser()
        self.fps = fps
        self.loop = loop
        self._frame_id = 0
        self._next_due_s = 0.0

    @property
    def drops_when_behind(self) -> bool:
        """An unpaced replay simply waits for the pipeline; a paced one stands in for a free-running camera."""
        return self.fps is not None

    @property
    def device_info(self) -> dict[str, str | None]:
        return {"vendor": None, "model": type(self).__name__, "serial": str(self.path)}

    def _fetch_impl(self, timeout_s: float | None) -> Frame:
        self._pace(timeout_s)
        try:
            image, source, timestamp_ns, pixel_format = self._next()
            error = None
        except _Unreadable as exc:  # one bad file is one ERROR decision, not the end of the replay
            image, source, timestamp_ns, pixel_format = _NO_IMAGE, exc.source, 0, "Mono8"
            error = str(exc)
        self._frame_id += 1
        self._stats["frames"] += 1
        return Frame(
            image=image,
            camera=self.name,
            frame_id=self._frame_id,
            timestamp_ns=timestamp_ns,
            received_ns=time.monotonic_ns(),
            pixel_format=pixel_format,
            source=source,
            error=error,
        )

    def _pace(self, timeout_s: float | None) -> None:
        """Hold frames back to ``fps``; a consumer slower than ``fps`` gets no burst afterwards."""
        if self.fps is None:
            return
        now = time.monotonic()
        wait_s = self._next_due_s - now
        if timeout_s is not None and wait_s > timeout_s:
            time.sleep(max(0.0, timeout_s))
            self._stats["timeouts"] += 1
            raise CameraTimeout(f"{self.name}: next frame due in {wait_s:.3f} s, after the {timeout_s:.3f} s timeout")
        if wait_s > 0:
            time.sleep(wait_s)
        self._next_due_s = max(self._next_due_s, now) + 1.0 / self.fps

    def _end(self, count: int) -> EndOfStream:
        return EndOfStream(f"{self.name}: end of stream after {count} frame(s) from {self.path}")

    def _next(self) -> tuple[np.ndarray, str, int, str]:
        """(image, source, timestamp_ns, pixel_format) of the next frame, or raise EndOfStream."""
        raise NotImplementedError


class FolderReplay(_ReplaySource):
    """Images of a folder in sorted file-name order; grayscale files stay HxWx1, others become RGB."""

    def __init__(self, path: str | Path, name: str | None = None, fps: float | None = None, loop: bool = False):
        super().__init__(path, name or f"folder:{path}", fps, loop)
        self._files: list[Path] = []
        self._position = 0

    @property
    def files(self) -> list[Path]:
        return list(self._files)

    def _open_impl(self) -> None:
        from ard_edge.data import IMAGE_EXTENSIONS, is_image_file  # loads cv2: only when replaying

        if not self.path.is_dir():
            raise CameraError(f"{self.name}: no such folder: {self.path}")
        self._files = sorted(p for p in self.path.iterdir() if p.is_file() and is_image_file(p))
        if not self._files:
            raise CameraError(f"{self.name}: no images ({', '.join(IMAGE_EXTENSIONS)}) in {self.path}")
        self._position = 0
        log.info("%s: replaying %d images from %s", self.name, len(self._files), self.path)

    def _close_impl(self) -> None:
        self._files = []

    def _next(self) -> tuple[np.ndarray, str, int, str]:
        if self._position >= len(self._files):
            if not self.loop:
                raise self._end(len(self._files))
            self._position = 0
        from ard_edge.data import read_image

        path = self._files[self._position]
        self._position += 1
        try:
            image = read_image(path, mono_as_rgb=False)
        except DataError as exc:
            raise _Unreadable(str(exc), str(path)) from exc
        return image, str(path), 0, "Mono8" if image.shape[2] == 1 else "RGB8"


class VideoReplay(_ReplaySource):
    """Frames of a video file (anything OpenCV's VideoCapture reads), as RGB."""

    def __init__(self, path: str | Path, name: str | None = None, fps: float | None = None, loop: bool = False):
        super().__init__(path, name or f"video:{path}", fps, loop)
        self._capture: Any = None
        self._index = 0  # frame index within the current pass

    @property
    def pixel_format(self) -> str:
        return "RGB8"  # decoded frames are converted to RGB

    def _open_impl(self) -> None:
        if not self.path.is_file():
            raise CameraError(f"{self.name}: no such video file: {self.path}")
        self._capture = self._new_capture()
        self._index = 0

    def _new_capture(self) -> Any:
        import cv2

        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"{self.name}: OpenCV cannot decode {self.path}")
        return capture

    def _close_impl(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def _next(self) -> tuple[np.ndarray, str, int, str]:
        import cv2

        ok, bgr = self._capture.read()
        if not ok:
            if not self.loop or self._index == 0:  # an empty pass would loop forever
                raise self._end(self._index)
            # Reopen rather than seek: seeking to frame 0 is unreliable for some codecs.
            self._capture.release()
            self._capture = self._new_capture()
            self._index = 0
            ok, bgr = self._capture.read()
            if not ok:
                raise self._end(0)
        position_ms = self._capture.get(cv2.CAP_PROP_POS_MSEC)  # after read: the frame just read
        source = f"{self.path}#{self._index}"
        self._index += 1
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), source, round(position_ms * 1e6), "RGB8"

