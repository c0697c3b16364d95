"""``CameraConfig``: one entry of the ``cameras:`` section of ``ard-edge.yaml``.

YAML keys are the field names (the product spec fixes them, so ``frame_rate`` carries its
unit in the comment and in :attr:`CameraConfig.frame_rate_hz` instead of in its name).
Fill it with :func:`ard_edge.config.from_dict`, which also calls :meth:`CameraConfig.validate`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Literal

from ard_edge.camera.pixel_formats import SUPPORTED_PIXEL_FORMATS
from ard_edge.config import check

TriggerMode = Literal["free_run", "software", "hardware"]
DEFAULT_TRIGGER_SOURCE = "Line0"


@dataclasses.dataclass(frozen=True)
class CameraConfig:
    """How to find one GenICam camera and what to set on it; ``None`` keeps the camera's value."""

    # Which producer and device. None of serial/user_name/index: the first device found.
    producer: Path | None = None  # GenTL producer (.cti); None: the .cti files on GENICAM_GENTL64_PATH
    # The viky.cti simulator inside the genicam wheel instead of a producer: for the demo and tests
    # only, and never a fallback, so a line cannot run on simulated frames by accident.
    simulator: bool = False
    serial: str | None = None  # device serial number (quote it in YAML: serial: "22012345")
    user_name: str | None = None  # user-defined name (DeviceUserID) stored in the camera
    index: int | None = None  # position in the device list

    # Image format: GenICam PixelFormat, Width, Height, OffsetX, OffsetY.
    pixel_format: str | None = None  # e.g. Mono8, BayerRG8; see SUPPORTED_PIXEL_FORMATS
    width: int | None = None  # pixels
    height: int | None = None  # pixels
    offset_x: int | None = None  # pixels, sensor-side crop origin
    offset_y: int | None = None

    # Exposure and rate: ExposureTime, Gain, AcquisitionFrameRate.
    exposure_us: float | None = None  # microseconds; switches ExposureAuto off
    gain: float | None = None  # camera units (usually dB); switches GainAuto off
    frame_rate: float | None = None  # Hz (key name fixed by the product spec)

    # Triggering: free_run streams, software waits for trigger(), hardware waits for a line.
    trigger: TriggerMode = "free_run"
    trigger_source: str | None = None  # hardware trigger input; default Line0

    # Streaming.
    num_buffers: int | None = None  # driver buffers; None: harvesters' default (3)
    timeout_ms: int = 1000  # default fetch timeout

    # Software crop [x, y, w, h] applied by the runtime after capture (not by the camera).
    roi: tuple[int, int, int, int] | None = None

    # The engine `ard-edge run` decides this camera's frames with; None: the one --engine names.
    # Cameras naming the same file share one loaded engine and are batched together.
    engine: Path | None = None

    @property
    def frame_rate_hz(self) -> float | None:
        return self.frame_rate

    @property
    def timeout_s(self) -> float:
        return self.timeout_ms / 1000.0

    @property
    def effective_trigger_source(self) -> str | None:
        """The line a hardware trigger listens on; None unless ``trigger`` is hardware."""
        if self.trigger != "hardware":
            return None
        return self.trigger_source or DEFAULT_TRIGGER_SOURCE

    def validate(self, path: str = "") -> None:
        """Check ranges and combinations; errors name the dotted key (``cameras.cam0.width``)."""

        def key(name: str) -> str:
            return f"{path}.{name}" if path else name

        if self.producer is not None:
            check(self.producer.suffix.lower() == ".cti", key("producer"),
                  f"a GenTL producer is a .cti file, got {self.producer}")
        check(not (self.simulator and self.producer is not None), key("simulator"),
              "set either simulator: true or producer, not both")
        chosen = [name for name in ("serial", "user_name", "index") if getattr(self, name) is not None]
        check(len(chosen) <= 1, path or "camera",
              f"set only one of serial, user_name, index (got {' and '.join(chosen)})")
        if self.index is not None:
            check(self.index >= 0, key("index"), f"must be >= 0, got {self.index}")
        if self.pixel_format is not None:
            check(self.pixel_format in SUPPORTED_PIXEL_FORMATS, key("pixel_format"),
                  f"{self.pixel_format!r} is not supported; use one of {', '.join(SUPPORTED_PIXEL_FORMATS)}")
        for name in ("width", "height"):
            value = getattr(self, name)
            check(value is None or value > 0, key(name), f"must be positive, got {value}")
        for name in ("offset_x", "offset_y"):
            value = getattr(self, name)
            check(value is None or value >= 0, key(name), f"must be >= 0, got {value}")
        for name in ("exposure_us", "frame_rate"):
            value = getattr(self, name)
            check(value is None or (math.isfinite(value) and value > 0), key(name), f"must be positive, got {value}")
        check(self.gain is None or math.isfinite(self.gain), key("gain"), f"must be a finite number, got {self.gain}")
        check(self.trigger_source is None or self.trigger == "hardware", key("trigger_source"),
              f"only used with trigger: hardware (trigger is {self.trigger})")
        check(self.num_buffers is None or self.num_buffers >= 1, key("num_buffers"),
              f"must be >= 1, got {self.num_buffers}")
        check(self.timeout_ms > 0, key("timeout_ms"), f"must be positive, got {self.timeout_ms}")
        if self.roi is not None:
            self._validate_roi(key("roi"))

    def _validate_roi(self, key: str) -> None:
        x, y, w, h = self.roi
        check(x >= 0 and y >= 0, key, f"x and y must be >= 0, got {list(self.roi)}")
        check(w > 0 and h > 0, key, f"w and h must be positive, got {list(self.roi)}")
        if self.width is not None:
            check(x + w <= self.width, key, f"x + w = {x + w} exceeds width {self.width}")
        if self.height is not None:
            check(y + h <= self.height, key, f"y + h = {y + h} exceeds height {self.height}")
