"""What every frame source yields (:class:`Frame`) and the interface they share (:class:`FrameSource`)."""

from __future__ import annotations

import abc
import dataclasses

import numpy as np

from ard_edge.camera.pixel_formats import SUPPORTED_PIXEL_FORMATS, channels_of
from ard_edge.errors import CameraError


@dataclasses.dataclass(frozen=True)
class Frame:
    """One image, owned by the caller: the driver buffer it came from is already requeued.

    The frame is a context manager only so that ``with cam.fetch(timeout_s=1.0) as frame:``
    reads like the rest of the loop; leaving the block releases nothing.
    """

    image: np.ndarray  # uint8 HxWxC, C=1 (mono) or 3 (RGB order)
    camera: str  # alias of the source that produced it (e.g. 'cam0', 'folder:good/')
    frame_id: int  # the camera's frame counter when it has one, else a per-source counter
    timestamp_ns: int = 0  # device timestamp (ns); 0 when the device gives none
    received_ns: int = 0  # host time.monotonic_ns() when the frame arrived
    pixel_format: str = "Mono8"  # GenICam name of the format the device sent
    source: str | None = None  # replay only: the file (and frame index) the image came from
    error: str | None = None  # why there is no image (an unreadable replay file): an ERROR decision, not the end

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def channels(self) -> int:
        return int(self.image.shape[2])

    def __enter__(self) -> Frame:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        return None


def new_stats() -> dict[str, int]:
    """Counters every source keeps: frames delivered, timeouts, incomplete buffers, reconnects."""
    return {"frames": 0, "timeouts": 0, "incomplete": 0, "reconnects": 0}


class FrameSource(abc.ABC):
    """A camera or replay: ``open``/``close`` (idempotent), ``fetch``, ``stats``, ``trigger_mode``.

    Subclasses implement the ``*_impl`` methods; the public methods check state, so closing
    twice or fetching from a closed source behaves the same for every kind of source. The
    runtime asks a source what it needs (:attr:`pixel_format`, :attr:`channels`, :attr:`roi`,
    :attr:`drops_when_behind`, :meth:`select_channels`), so a new kind of source needs no
    runtime change.
    """

    trigger_mode: str = "free_run"

    def __init__(self, name: str):
        self.name = name
        self._is_open = False
        self._stats = new_stats()

    @property
    def is_open(self) -> bool:
        return self._is_open

    @property
    def stats(self) -> dict[str, int]:
        """A copy of the counters: frames, timeouts, incomplete, reconnects."""
        return dict(self._stats)

    @property
    def pixel_format(self) -> str | None:
        """GenICam name of the format the source is set to deliver; None when only its frames will tell."""
        return None

    @property
    def channels(self) -> int | None:
        """Channels of the frames to come (1 mono, 3 colour); None when not known before a frame."""
        pixel_format = self.pixel_format
        if pixel_format not in SUPPORTED_PIXEL_FORMATS:
            return None  # unknown, or a format the conversion refuses later with its own message
        return channels_of(pixel_format)

    @property
    def roi(self) -> tuple[int, int, int, int] | None:
        """The ``[x, y, w, h]`` region of each frame the engine should see; None for the whole frame."""
        return None

    @property
    def drops_when_behind(self) -> bool:
        """Whether frames are dropped (oldest first) when inference falls behind, rather than the source held back.

        A free-running device keeps producing whether or not we keep up; triggered frames are
        parts on the line and are never dropped.
        """
        return self.trigger_mode == "free_run"

    @property
    def device_info(self) -> dict[str, str | None]:
        """The vendor, model and serial of what produces the frames, for the decision log and summary."""
        return {"vendor": None, "model": type(self).__name__, "serial": None}

    @property
    def exposure_us(self) -> float | None:
        """The exposure time the device reports now (microseconds); None when it has none."""
        return None

    def select_channels(self, channels: int) -> str | None:
        """Switch to a pixel format with ``channels`` channels if the source offers one; return it, else None."""
        return None

    def open(self) -> FrameSource:
        """Acquire the device or file; a no-op when already open. Returns ``self``."""
        if not self._is_open:
            self._open_impl()
            self._is_open = True
        return self

    def close(self) -> None:
        """Release everything; harmless when already closed."""
        if not self._is_open:
            return
        try:
            self._close_impl()
        finally:
            self._is_open = False

    def fetch(self, timeout_s: float | None = None) -> Frame:
        """Return the next frame (a copy), waiting at most ``timeout_s`` seconds.

        Raises:
            CameraTimeout: no frame arrived in time.
            CameraDisconnected: the device is gone (GenICam cameras reopen it on later calls).
            EndOfStream: a replay source without ``loop`` is exhausted.
        """
        if not self._is_open:
            raise CameraError(f"{self.name}: source is not open (use `with` or call open() first)")
        return self._fetch_impl(timeout_s)

    def trigger(self) -> None:
        """Ask for one frame; only sources opened with ``trigger: software`` support it."""
        raise CameraError(f"{self.name}: trigger() needs `trigger: software` (this source is {self.trigger_mode})")

    def __enter__(self) -> FrameSource:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._is_open else "closed"
        return f"{type(self).__name__}({self.name!r}, {state})"

    @abc.abstractmethod
    def _open_impl(self) -> None: ...

    @abc.abstractmethod
    def _close_impl(self) -> None: ...

    @abc.abstractmethod
    def _fetch_impl(self, timeout_s: float | None) -> Frame: ...
