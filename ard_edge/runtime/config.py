"""``AppConfig``: the whole ``ard-edge.yaml``, one section per concern.

Add a section by adding a field whose type is that concern's frozen dataclass (with a default),
e.g. ``runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)``;
:func:`ard_edge.config.from_dict` fills and validates it with dotted key paths.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from ard_edge.camera.config import CameraConfig
from ard_edge.config import check, from_dict, load_yaml
from ard_edge.errors import ConfigError
from ard_edge.runtime.outputs_config import OutputsConfig

DEFAULT_CONFIG_PATH = Path("ard-edge.yaml")


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """The ``runtime:`` section: how ``ard-edge run`` batches, decides and keeps evidence."""

    # Inference batching.
    batch: int = 1  # most frames per engine call; clipped to the engine's batch range
    max_wait_ms: float = 5.0  # longest a partial batch waits for more frames (ms)
    queue_size: int = 8  # frames held between two stages; free-run cameras drop the oldest beyond it

    # Decisions.
    error_is_reject: bool = True  # an ERROR (engine fault, bad frame) rejects the part: fail-safe
    rotate_mb: float = 64.0  # decisions.jsonl rolls over to decisions.1.jsonl past this size (MB)

    # Evidence images under <out>/fail (and <out>/pass).
    save_pass_every: int = 0  # also keep every Nth PASS frame; 0 keeps none
    min_free_disk_mb: float = 500.0  # below this free space, stop saving images (decisions go on)
    evidence_queue_size: int = 16  # images waiting to be written; beyond it an image is skipped

    # Threads. The GenICam fetch waits inside the driver bindings without releasing the GIL, so
    # the other stages would wait up to Python's default 5 ms switch interval for it; a short
    # interval, set only while a pipeline runs, keeps each hand-over near 1 ms. 0: leave it alone.
    gil_switch_interval_ms: float = 0.1

    # Start-up and reporting.
    startup_timeout_s: float = 10.0  # wait for a first frame to check its channel count
    status_interval_s: float = 1.0  # how often sinks get a live status
    log_frames: bool = False  # one DEBUG log line per decision (noisy; for debugging only)

    def validate(self, path: str = "") -> None:
        """Check ranges; errors name the dotted key (``runtime.batch``)."""

        def key(name: str) -> str:
            return f"{path}.{name}" if path else f"runtime.{name}"

        for name, low, high in _RANGES:
            value = getattr(self, name)
            above_low = value > low if name in _POSITIVE else value >= low
            check(math.isfinite(value) and above_low and value <= high, key(name),
                  f"must be a finite number {'above' if name in _POSITIVE else 'from'} {low:g}"
                  f" {'and at most' if name in _POSITIVE else 'to'} {high:g}, got {value}")


# (key, lowest, highest): bounds past which a value is a mistake or would overflow a thread wait.
_RANGES = (
    ("batch", 1, 4096), ("queue_size", 1, 1_000_000), ("evidence_queue_size", 1, 1_000_000),
    ("max_wait_ms", 0, 60_000), ("min_free_disk_mb", 0, 1e12), ("gil_switch_interval_ms", 0, 1000),
    ("rotate_mb", 0, 1e6), ("startup_timeout_s", 0, 86_400), ("status_interval_s", 0, 3600),
    ("save_pass_every", 0, 1e9),
)
_POSITIVE = {"rotate_mb", "startup_timeout_s", "status_interval_s"}  # 0 is out of range too


@dataclasses.dataclass(frozen=True)
class HttpConfig:
    """The ``http:`` section: the live page, ``/metrics`` and health endpoints of ``ard-edge run``."""

    listen: str = ""  # HOST:PORT to serve on (``--http`` overrides); empty serves nothing
    max_fps: float = 5.0  # live frames encoded per camera and second, at most, while a viewer is connected
    fails_shown: int = 12  # FAIL thumbnails on the page

    def validate(self, path: str = "") -> None:
        prefix = path or "http"
        if self.listen:
            check(split_listen(self.listen) is not None, f"{prefix}.listen",
                  f"expected HOST:PORT (e.g. 127.0.0.1:8080), got {self.listen!r}")
        check(math.isfinite(self.max_fps) and 0 < self.max_fps <= 60, f"{prefix}.max_fps",
              f"must be a finite number above 0 and at most 60, got {self.max_fps}")
        check(1 <= self.fails_shown <= 100, f"{prefix}.fails_shown", f"must be from 1 to 100, got {self.fails_shown}")


def split_listen(listen: str) -> tuple[str, int] | None:
    """``"127.0.0.1:8080"`` -> ``("127.0.0.1", 8080)``, ``"[::1]:0"`` -> ``("::1", 0)``; None when malformed."""
    host, sep, port = listen.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        return None
    return host, int(port)


@dataclasses.dataclass(frozen=True)
class AppConfig:
    """Everything ard-edge.yaml can hold; every section is optional."""

    # alias -> camera; an alias is what `ard-edge run --source cam0` names.
    cameras: dict[str, CameraConfig] = dataclasses.field(default_factory=dict)
    # How `ard-edge run` batches, decides, logs and keeps evidence.
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
    # Names every decision carries (and MQTT topics and OPC UA objects use); empty: not recorded.
    line: str = ""
    station: str = "station"
    # MQTT, webhook and OPC UA outputs (docs/outputs.md); the decision log is always on.
    outputs: OutputsConfig = dataclasses.field(default_factory=OutputsConfig)
    # The live page, /metrics and health endpoints (off unless listen or --http is given).
    http: HttpConfig = dataclasses.field(default_factory=HttpConfig)

    def validate(self, path: str = "") -> None:
        prefix = f"{path}.cameras" if path else "cameras"
        for alias in self.cameras:
            # folder:PATH and video:PATH are replay specs, so an alias cannot hold a colon.
            check(isinstance(alias, str) and alias != "" and ":" not in alias, f"{prefix}.{alias}",
                  "a camera alias must be a non-empty name without ':'")
        for name in ("line", "station"):  # both end up in MQTT topics
            check(not set(getattr(self, name)) & set("/#+"), f"{path}.{name}" if path else name,
                  "must not contain / # or + (it is part of MQTT topics)")
        check(self.station != "", f"{path}.station" if path else "station", "must not be empty")


def load_app_config(path: Path | None) -> AppConfig:
    """Read ard-edge.yaml.

    Args:
        path: the file to read, which must exist; None reads ``./ard-edge.yaml`` when it
            exists and returns an empty config otherwise.

    Raises:
        ConfigError: missing explicit file, bad YAML, unknown key or bad value (the message
            names the file and the dotted key, e.g. ``cameras.cam0.frame_rat``).
    """
    if path is None:
        if not DEFAULT_CONFIG_PATH.is_file():
            return AppConfig()
        path = DEFAULT_CONFIG_PATH
    data = load_yaml(path)
    try:
        return from_dict(AppConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
