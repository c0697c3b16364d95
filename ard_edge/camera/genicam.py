"""GenICam cameras through harvesters: producer discovery, device listing, :class:`GenICamCamera`.

harvesters (and the genicam bindings under it) load only inside the functions that open a
producer, so importing this module is cheap. Their exceptions become :class:`CameraError`,
:class:`CameraTimeout` or :class:`CameraDisconnected` here, at the boundary.

One process may hold several cameras. A GenTL producer is loaded once per process: a second
Harvester loading the same ``.cti`` sees no devices. So cameras that use the same producer
list share one Harvester (:func:`_acquire_harvester`), released when the last one closes.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import importlib.util
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from ard_edge.camera.config import CameraConfig
from ard_edge.camera.frames import Frame, FrameSource
from ard_edge.camera.pixel_formats import SUPPORTED_PIXEL_FORMATS, channels_of, image_from_component
from ard_edge.errors import CameraDisconnected, CameraError, CameraTimeout, require

log = logging.getLogger(__name__)
# harvesters logs through a logger we hand it, so its messages follow the app's logging setup
# instead of its own stderr handler. Its INFO lines narrate every start/stop and its warnings
# repeat, with tracebacks, what this module reports itself: show only its errors by default.
_HARVESTERS_LOGGER = logging.getLogger(f"{__name__}.harvesters")
# harvesters waits for a buffer in GenTL calls that hold the GIL (1 ms each by default), which
# stalls the pipeline's other threads for milliseconds. We poll without blocking instead:
# a zero-wait GenTL call, then a short sleep that releases the GIL.
_POLL_SPIN_S = 0.0002
_POLL_SLEEP_S = 0.0005
_HARVESTERS_LOGGER.setLevel(logging.ERROR)

PRODUCER_PATH_ENV = "GENICAM_GENTL64_PATH"
RECONNECT_INITIAL_S = 0.5
RECONNECT_MAX_S = 8.0


# -- producers ---------------------------------------------------------------------------------


def simulator_producer() -> Path | None:
    """The viky.cti simulator shipped inside the installed ``genicam`` package, if present."""
    spec = importlib.util.find_spec("genicam")  # locate without importing the native libraries
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "viky.cti"
    return path if path.is_file() else None


def find_producers(producer: Path | None = None, simulator: bool = False) -> list[Path]:
    """The GenTL producers to load: ``producer``, the simulator when asked, else every .cti in GENICAM_GENTL64_PATH.

    The simulator is loaded only when asked for (``simulator: true``), and says so: a missing or
    wrong producer path is an error, never a silent switch to simulated frames.

    Raises:
        CameraError: ``producer`` does not exist, GENICAM_GENTL64_PATH holds no .cti, or nothing is configured.
    """
    if simulator:
        path = simulator_producer()
        if path is None:
            raise CameraError("simulator: true, but the installed genicam package ships no viky.cti")
        log.warning("using the GenICam simulator %s (simulator: true): frames are simulated, not a camera's", path)
        return [path]
    if producer is not None:
        producer = Path(producer).expanduser()
        if not producer.is_file():
            raise CameraError(f"GenTL producer not found: {producer} (check `producer:` in ard-edge.yaml)")
        log.info("GenTL producer from the config: %s", producer)
        return [producer]
    listed = os.environ.get(PRODUCER_PATH_ENV, "")
    found = _producers_on_env_path()
    if found:
        log.info("GenTL producers from %s: %s", PRODUCER_PATH_ENV, ", ".join(map(str, found)))
        return found
    if listed:
        raise CameraError(f"{PRODUCER_PATH_ENV}={listed}: no GenTL producer (.cti) there; fix the path"
                          " or set `producer:` in ard-edge.yaml")
    raise CameraError(f"no GenTL producer: set `producer:` in ard-edge.yaml or {PRODUCER_PATH_ENV}"
                      " (`simulator: true` runs the viky.cti simulator, for demos and tests)")


def _producers_on_env_path() -> list[Path]:
    found: dict[Path, None] = {}  # ordered set: a directory listed twice loads once
    for directory in os.environ.get(PRODUCER_PATH_ENV, "").split(os.pathsep):
        if directory and Path(directory).is_dir():
            for path in sorted(Path(directory).glob("*.cti")):
                if path.is_file():
                    found.setdefault(path.resolve(), None)
    return list(found)


# -- the shared Harvester ----------------------------------------------------------------------


@dataclasses.dataclass
class _SharedHarvester:
    key: tuple[str, ...]  # resolved producer paths
    harvester: Any
    users: int = 0


_POOL: dict[tuple[str, ...], _SharedHarvester] = {}
_POOL_LOCK = threading.Lock()


def _acquire_harvester(producers: list[Path]) -> _SharedHarvester:
    """The process-wide Harvester for ``producers``; created and scanned on first use."""
    key = tuple(str(Path(p).resolve()) for p in producers)
    with _POOL_LOCK:
        shared = _POOL.get(key)
        if shared is None:
            for other in _POOL:
                if set(other) & set(key):
                    raise CameraError(
                        f"producer {sorted(set(other) & set(key))[0]} is already loaded by an open camera"
                        f" with a different producer list ({', '.join(other)}); cameras that share a"
                        " producer must use the same `producer:` setting"
                    )
            shared = _SharedHarvester(key, _new_harvester(producers))
            _POOL[key] = shared
        shared.users += 1
        return shared


def _release_harvester(shared: _SharedHarvester) -> None:
    with _POOL_LOCK:  # held through reset: a new Harvester must not load the producer before it closes
        shared.users -= 1
        if shared.users > 0:
            return
        _POOL.pop(shared.key, None)
        try:
            shared.harvester.reset()  # destroys leftover acquirers, closes the producers
        except Exception as exc:  # noqa: BLE001 - teardown of a driver that may already be gone
            log.debug("releasing the Harvester failed: %s", exc)


def _new_harvester(producers: list[Path]) -> Any:
    core = require("harvesters.core", "camera")
    for path in producers:
        # harvesters only logs a producer it cannot load and then lists no devices; check first
        # so the error names the file.
        try:
            ctypes.CDLL(str(path))
        except OSError as exc:
            raise CameraError(f"cannot load GenTL producer {path}: {exc}") from exc
    harvester = core.Harvester(config=core.ParameterSet({core.ParameterKey.LOGGER: _HARVESTERS_LOGGER}))
    for path in producers:
        harvester.add_file(str(path))
    harvester.update()
    return harvester


@functools.cache
def _genicam_errors() -> tuple[type[Exception], type[Exception], type[Exception]]:
    """(GenTL timeout, GenTL error, GenApi error) classes, imported on first use."""
    from genicam.genapi import GenericException as GenApiError
    from genicam.gentl import GenericException as GenTLError
    from genicam.gentl import TimeoutException

    return TimeoutException, GenTLError, GenApiError


def _driver_errors() -> tuple[type[Exception], ...]:
    return _genicam_errors()[1:]


# -- devices -----------------------------------------------------------------------------------


def list_devices(producer: Path | None = None, simulator: bool = False) -> list[dict[str, Any]]:
    """Devices the producers (see :func:`find_producers`) can see.

    Returns:
        One dict per device: index, vendor, model, serial, user_defined_name, tl_type, id,
        producer (the .cti path).
    """
    shared = _acquire_harvester(find_producers(producer, simulator))
    try:
        return _device_dicts(shared.harvester)
    finally:
        _release_harvester(shared)


def _device_dicts(harvester: Any) -> list[dict[str, Any]]:
    devices = []
    for index, info in enumerate(harvester.device_info_list):
        props = info.property_dict
        devices.append({
            "index": index,
            "vendor": props.get("vendor"),
            "model": props.get("model"),
            "serial": props.get("serial_number"),
            "user_defined_name": props.get("user_defined_name"),
            "tl_type": props.get("tl_type"),
            "id": props.get("id_"),
            "producer": _producer_of(info),
        })
    return devices


def _producer_of(info: Any) -> str | None:
    try:  # DeviceInfo -> Interface -> System -> Producer
        return info.parent.parent.parent.module.path_name
    except Exception:  # noqa: BLE001 - informative only
        return None


def describe_device(device: dict[str, Any]) -> str:
    return f"{device['vendor']} {device['model']} (serial {device['serial']})"


def select_device(devices: list[dict[str, Any]], config: CameraConfig, name: str = "camera") -> int:
    """Index of the device ``config`` asks for (serial, user_name, index, else the first).

    Raises:
        CameraError: no device, no match, or an ambiguous user name.
    """
    if not devices:
        raise CameraError(f"{name}: no GenICam device found")
    if config.index is not None:
        if config.index < len(devices):
            return config.index
        raise CameraError(f"{name}: index {config.index}, but only {len(devices)} device(s): {_summary(devices)}")
    if config.serial is not None:
        wanted, field = config.serial, "serial"
    elif config.user_name is not None:
        wanted, field = config.user_name, "user_defined_name"
    else:
        return 0
    matches = [i for i, device in enumerate(devices) if device[field] == wanted]
    if len(matches) == 1:
        return matches[0]
    label = "serial" if field == "serial" else "user name"
    if not matches:
        raise CameraError(f"{name}: no device with {label} {wanted!r}; found {_summary(devices)}")
    raise CameraError(f"{name}: {len(matches)} devices have {label} {wanted!r}; choose one by serial")


def _summary(devices: list[dict[str, Any]]) -> str:
    return ", ".join(describe_device(device) for device in devices)


# -- the camera --------------------------------------------------------------------------------


class GenICamCamera(FrameSource):
    """One GenICam camera opened through harvesters.

    ``fetch`` copies each image out and requeues the driver buffer at once. When the device
    disappears, ``fetch`` raises :class:`CameraDisconnected`; later calls reopen it, the first
    attempt ``reconnect_initial_s`` after the loss, doubling up to ``reconnect_max_s``, and the
    configured features are applied again.

    Example::

        with GenICamCamera(CameraConfig(pixel_format="Mono8"), name="cam0") as cam:
            frame = cam.fetch(timeout_s=1.0)
    """

    def __init__(
        self,
        config: CameraConfig | None = None,
        name: str = "cam0",
        *,
        reconnect_initial_s: float = RECONNECT_INITIAL_S,
        reconnect_max_s: float = RECONNECT_MAX_S,
    ):
        super().__init__(name)
        self.config = config or CameraConfig()
        self.trigger_mode = self.config.trigger
        self._reconnect_initial_s = reconnect_initial_s
        self._reconnect_max_s = reconnect_max_s
        self._backoff_s = reconnect_initial_s
        self._next_attempt_s = 0.0
        self._shared: _SharedHarvester | None = None
        self._ia: Any = None
        # Held while harvesters works on the acquirer, so close() from another thread never
        # destroys it mid-call (that crashes inside the GenTL binding).
        self._io_lock = threading.RLock()
        self._device: dict[str, Any] | None = None
        self._warned: set[str] = set()
        self._frame_counter = 0
        self._selected_format: str | None = None  # chosen by select_channels; kept across reconnects

    @property
    def device(self) -> dict[str, Any] | None:
        """The opened device as :func:`list_devices` describes it; None before open."""
        return self._device

    @property
    def device_info(self) -> dict[str, str | None]:
        device = self._device or {}
        return {"vendor": device.get("vendor"), "model": device.get("model"), "serial": device.get("serial")}

    @property
    def node_map(self) -> Any:
        """The camera's GenApi node map, for features this class does not cover; None while gone."""
        return None if self._ia is None else self._ia.remote_device.node_map

    @property
    def pixel_format(self) -> str | None:
        """The configured (or selected) format, else the device's PixelFormat; None while it is gone."""
        return self.config.pixel_format or self._selected_format or self._node_value("PixelFormat")

    @property
    def roi(self) -> tuple[int, int, int, int] | None:
        return self.config.roi

    def select_channels(self, channels: int) -> str | None:
        """Switch the device to the first supported format with ``channels`` channels it offers.

        A ``pixel_format`` in the config is the operator's word: then nothing is switched.
        """
        if self.config.pixel_format is not None or self._ia is None:
            return None
        with self._io_lock:
            node_map = self._ia.remote_device.node_map
            offered = set(self._node_symbolics(node_map, "PixelFormat"))
            choice = next((f for f in SUPPORTED_PIXEL_FORMATS if f in offered and channels_of(f) == channels), None)
            if choice is None:
                return None
            self._ia.stop()  # PixelFormat is locked while the device streams
            try:
                if not self._set(node_map, "pixel_format", ("PixelFormat",), choice, strict=False):
                    return None
            finally:
                self._ia.start()
        self._selected_format = choice
        return choice

    @property
    def exposure_us(self) -> float | None:
        for feature in ("ExposureTime", "ExposureTimeAbs"):
            value = self._node_value(feature)
            if value is not None:
                try:
                    return float(value)
                except ValueError:
                    return None
        return None

    def _node_value(self, feature: str) -> str | None:
        node_map = self.node_map
        if node_map is None:
            return None
        try:
            return str(getattr(node_map, feature).value)
        except (*_driver_errors(), AttributeError):
            return None

    @staticmethod
    def _node_symbolics(node_map: Any, feature: str) -> tuple[str, ...]:
        try:
            return tuple(getattr(node_map, feature).symbolics)
        except (*_driver_errors(), AttributeError):
            return ()

    # -- lifecycle

    def _open_impl(self) -> None:
        self._shared = _acquire_harvester(find_producers(self.config.producer, self.config.simulator))
        try:
            self._connect(refresh=False)
        except BaseException:
            self._release_shared()
            raise

    def _close_impl(self) -> None:
        with self._io_lock:
            try:
                self._disconnect()
            finally:
                self._release_shared()

    def _release_shared(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            _release_harvester(shared)

    def _connect(self, refresh: bool) -> None:
        harvester = self._shared.harvester
        if refresh:
            harvester.update()  # rediscover; only done when no other camera shares the Harvester
        devices = _device_dicts(harvester)
        if not devices:
            raise CameraError(
                f"{self.name}: no GenICam device found; producers loaded: {', '.join(self._shared.key)}"
                " (check that the camera is powered and connected, and that nothing else in this"
                " process holds the producer)"
            )
        index = select_device(devices, self.config, self.name)
        ia = self._create_acquirer(harvester, devices[index])
        try:
            self._configure(ia)
            ia.start()
        except _driver_errors() as exc:
            self._destroy(ia)
            raise CameraError(f"{self.name}: cannot start {describe_device(devices[index])}: {exc}") from exc
        except BaseException:
            self._destroy(ia)
            raise
        self._ia = ia
        self._device = devices[index]
        log.info("%s: streaming from %s via %s", self.name, describe_device(self._device), self._device["producer"])

    def _create_acquirer(self, harvester: Any, device: dict[str, Any]) -> Any:
        # harvesters replaces the SIGINT handler with one that silently destroys the acquirer;
        # Ctrl-C must still raise KeyboardInterrupt in the runtime loop, so put it back.
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGINT) if in_main else None
        try:
            ia = harvester.create(device["index"])
            ia.timeout_period_on_update_event_data_call = 0
            return ia
        except _driver_errors() as exc:
            raise CameraError(
                f"{self.name}: cannot open {describe_device(device)}: {exc} (is another program using it?)"
            ) from exc
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _disconnect(self) -> None:
        ia, self._ia = self._ia, None
        if ia is not None:
            self._destroy(ia)

    def _destroy(self, ia: Any) -> None:
        try:
            ia.destroy()  # stops acquisition, requeues buffers, closes the device; no-op if done
        except Exception as exc:  # noqa: BLE001 - the device may be gone; nothing left to free
            log.debug("%s: destroying the image acquirer failed: %s", self.name, exc)
        acquirers = self._shared.harvester.image_acquirers if self._shared else []
        if ia in acquirers:
            acquirers.remove(ia)  # harvesters keeps destroyed acquirers listed otherwise

    # -- features

    def _configure(self, ia: Any) -> None:
        if self.config.num_buffers is not None:
            try:
                ia.num_buffers = self.config.num_buffers
            except ValueError as exc:
                raise CameraError(f"{self.name}: the driver refused num_buffers = {self.config.num_buffers} ({exc});"
                                  f" fix cameras.{self.name}.num_buffers") from exc
        ia.add_callback(ia.Events.INCOMPLETE_BUFFER, _incomplete_counter(self._stats))
        self._apply_features(ia.remote_device.node_map)

    def _apply_features(self, node_map: Any) -> None:
        """Set the configured GenICam features: one the camera lacks warns once, one it refuses is an error."""
        c = self.config
        if c.pixel_format or self._selected_format:
            self._set(node_map, "pixel_format", ("PixelFormat",), c.pixel_format or self._selected_format,
                      strict=c.pixel_format is not None)
        # Zero a configured offset first so that a larger Width/Height fits the sensor.
        for setting, feature in (("offset_x", "OffsetX"), ("offset_y", "OffsetY")):
            if getattr(c, setting) is not None:
                self._set_quietly(node_map, feature, 0)
        for setting, feature in (("width", "Width"), ("height", "Height"), ("offset_x", "OffsetX"),
                                 ("offset_y", "OffsetY")):
            if getattr(c, setting) is not None:
                self._set(node_map, setting, (feature,), getattr(c, setting))
        if c.exposure_us is not None:
            self._set_quietly(node_map, "ExposureAuto", "Off")  # else auto exposure overrides it
            self._set(node_map, "exposure_us", ("ExposureTime", "ExposureTimeAbs"), float(c.exposure_us))
        if c.gain is not None:
            self._set_quietly(node_map, "GainAuto", "Off")
            self._set(node_map, "gain", ("Gain",), float(c.gain))
        if c.frame_rate is not None:
            self._set_quietly(node_map, "AcquisitionFrameRateEnable", True)  # else the rate is ignored
            self._set(node_map, "frame_rate", ("AcquisitionFrameRate", "AcquisitionFrameRateAbs"), float(c.frame_rate))
        self._apply_trigger(node_map)

    def _apply_trigger(self, node_map: Any) -> None:
        self._set_quietly(node_map, "TriggerSelector", "FrameStart")
        if self.config.trigger == "free_run":
            self._set_quietly(node_map, "TriggerMode", "Off")  # a camera may keep a trigger from its last user
            return
        if self._set(node_map, "trigger", ("TriggerMode",), "On"):
            source = "Software" if self.config.trigger == "software" else self.config.effective_trigger_source
            self._set(node_map, "trigger_source", ("TriggerSource",), source)

    def _set(self, node_map: Any, setting: str, features: tuple[str, ...], value: Any, strict: bool = True) -> bool:
        """Set the first of ``features`` the camera has; warn once per setting when it has none.

        A value the camera refuses is an error when the user wrote it (``strict``): running at the
        camera's defaults would inspect other images than the model was trained on. A value we
        chose ourselves (``strict=False``) only reports failure.
        """
        for feature in features:
            if not node_map.has_node(feature):
                continue
            try:
                getattr(node_map, feature).value = value
                return True
            except _driver_errors() as exc:
                reason = str(exc).split(" : ")[0]  # drop the C++ file/line trailer
                if strict:
                    raise CameraError(f"{self.name}: the camera refused {feature} = {value!r} ({reason});"
                                      f" fix cameras.{self.name}.{setting} in ard-edge.yaml") from exc
                log.debug("%s: %s=%r not applied: %s", self.name, feature, value, reason)
                return False
        self._warn_once(setting, f"{self.name}: camera has no {features[0]} feature; `{setting}` ignored")
        return False

    def _set_quietly(self, node_map: Any, feature: str, value: Any) -> None:
        """Best-effort helper settings (auto modes, selectors) that many cameras lack."""
        if node_map.has_node(feature):
            try:
                getattr(node_map, feature).value = value
            except _driver_errors() as exc:
                log.debug("%s: %s=%r not applied: %s", self.name, feature, value, exc)

    def _warn_once(self, key: str, message: str) -> None:
        # Reconnects apply the features again; the operator needs to hear about each only once.
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)

    # -- acquisition

    def trigger(self) -> None:
        """Execute TriggerSoftware: one frame for a camera opened with ``trigger: software``."""
        if self.trigger_mode != "software":
            super().trigger()
        if not self._is_open:
            raise CameraError(f"{self.name}: source is not open")
        if self._ia is None or not self._ia.is_valid():
            raise CameraDisconnected(f"{self.name}: device is gone; cannot trigger")
        node_map = self._ia.remote_device.node_map
        if not node_map.has_node("TriggerSoftware"):
            raise CameraError(f"{self.name}: {describe_device(self._device)} has no TriggerSoftware command")
        try:
            node_map.TriggerSoftware.execute()
        except _driver_errors() as exc:
            raise CameraError(f"{self.name}: TriggerSoftware failed: {exc}") from exc

    def _fetch_impl(self, timeout_s: float | None) -> Frame:
        timeout_s = self.config.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        if self._ia is None:
            self._reconnect_before(deadline)
        while (frame := self._poll_once()) is None:
            if time.monotonic() >= deadline:
                self._stats["timeouts"] += 1
                raise CameraTimeout(f"{self.name}: no frame within {timeout_s:.3f} s")
            time.sleep(_POLL_SLEEP_S)
        self._stats["frames"] += 1
        return frame

    def _poll_once(self) -> Frame | None:
        """One non-blocking look for a filled buffer; the frame is copied before it is requeued."""
        with self._io_lock, self._losing_device_raises():
            ia = self._ia
            if ia is None:
                raise CameraError(f"{self.name}: the camera was closed while streaming")
            if not ia.is_valid():  # destroyed under us (harvesters' SIGINT handler, a driver reset)
                self._lost("the image acquirer was destroyed")
                raise CameraDisconnected(f"{self.name}: device is gone; reconnecting")
            buffer = ia.try_fetch(timeout=_POLL_SPIN_S)
            if buffer is None:
                return None
            received_ns = time.monotonic_ns()
            with buffer:  # leaving requeues the buffer
                return self._frame_from(buffer, received_ns)

    @contextlib.contextmanager
    def _losing_device_raises(self):
        """Turn a driver error into CameraDisconnected and start the reconnect backoff."""
        ia = self._ia
        try:
            yield
        except CameraError:
            raise
        except Exception as exc:
            # A driver error, or any error from harvesters once the acquirer is no longer valid
            # (destroyed from another thread mid-call), means the device is gone.
            if not isinstance(exc, _driver_errors()) and ia is not None and ia.is_valid():
                raise
            self._lost(exc)
            raise CameraDisconnected(f"{self.name}: device lost ({exc}); reconnecting") from exc

    def _frame_from(self, buffer: Any, received_ns: int) -> Frame | None:
        components = buffer.payload.components if buffer.payload is not None else []
        if not components:  # chunk-only or unknown payload: nothing to show
            self._stats["incomplete"] += 1
            return None
        component = components[0]
        self._frame_counter += 1
        return Frame(
            image=image_from_component(component),
            camera=self.name,
            frame_id=self._frame_id(buffer),
            timestamp_ns=_timestamp_ns(buffer),
            received_ns=received_ns,
            pixel_format=component.data_format,
        )

    def _frame_id(self, buffer: Any) -> int:
        try:
            return int(buffer.module.frame_id)
        except _driver_errors():
            return self._frame_counter

    # -- reconnect

    def _lost(self, reason: object) -> None:
        log.warning("%s: device lost (%s); reopening in %.1f s", self.name, reason, self._reconnect_initial_s)
        self._disconnect()
        self._backoff_s = self._reconnect_initial_s
        self._next_attempt_s = time.monotonic() + self._backoff_s

    def _reconnect_before(self, deadline: float) -> None:
        """Reopen the device if the next attempt falls before ``deadline``; else wait and raise."""
        now = time.monotonic()
        if self._next_attempt_s > deadline:
            time.sleep(max(0.0, deadline - now))  # block like a timeout so callers do not spin
            wait_s = self._next_attempt_s - time.monotonic()
            raise CameraDisconnected(f"{self.name}: device is gone; next reconnect attempt in {wait_s:.1f} s")
        time.sleep(max(0.0, self._next_attempt_s - now))
        with self._io_lock:
            if self._shared is None:
                raise CameraError(f"{self.name}: the camera was closed while streaming")
            try:
                self._connect(refresh=self._shared.users == 1)
            except CameraError as exc:
                self._backoff_s = min(self._backoff_s * 2, self._reconnect_max_s)
                self._next_attempt_s = time.monotonic() + self._backoff_s
                log.warning("%s: reconnect failed (%s); next attempt in %.1f s", self.name, exc, self._backoff_s)
                raise CameraDisconnected(
                    f"{self.name}: reconnect failed; next attempt in {self._backoff_s:.1f} s"
                ) from exc
        self._stats["reconnects"] += 1
        self._backoff_s = self._reconnect_initial_s
        log.info("%s: reconnected", self.name)


def _incomplete_counter(stats: dict[str, int]) -> Any:
    """A harvesters Callback counting incomplete buffers (built here: its base class is in harvesters)."""
    from harvesters.core import Callback

    class _CountIncomplete(Callback):
        def emit(self, context: Any = None) -> None:
            stats["incomplete"] += 1

    return _CountIncomplete()


def _timestamp_ns(buffer: Any) -> int:
    """Device timestamp in ns: GenTL's ns value, else ticks scaled by the tick rate, else 0."""
    try:
        return int(buffer.module.timestamp_ns)
    except _driver_errors():
        pass
    try:
        ticks = int(buffer.module.timestamp)
        return ticks * 1_000_000_000 // int(buffer.timestamp_frequency)
    except (*_driver_errors(), AttributeError, ZeroDivisionError):
        return 0
