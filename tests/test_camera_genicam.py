"""GenICam capture on the simulators: viky.cti (genicam 1.6) and, when fetched, TLSimu.cti (1.5.0).

TLSimu comes from ``python scripts/fetch_tlsimu.py`` (set ARD_EDGE_TLSIMU to use another copy).
"""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ard_edge.camera import (
    CameraConfig,
    CameraDisconnected,
    GenICamCamera,
    find_producers,
    list_devices,
    open_source,
    simulator_producer,
)
from ard_edge.errors import CameraError, CameraTimeout

VIKY = simulator_producer()
TLSIMU = Path(os.environ.get("ARD_EDGE_TLSIMU", Path.home() / ".cache/ard-edge/genicam-1.5.0/TLSimu.cti"))

pytestmark = pytest.mark.skipif(VIKY is None, reason="the installed genicam package has no viky.cti")
needs_tlsimu = pytest.mark.skipif(
    not TLSIMU.is_file(), reason=f"{TLSIMU} missing: run `python scripts/fetch_tlsimu.py` (downloads genicam 1.5.0)"
)


@pytest.fixture(autouse=True)
def no_producer_path(monkeypatch):
    # A machine with real producers on GENICAM_GENTL64_PATH must not change what these tests see.
    monkeypatch.delenv("GENICAM_GENTL64_PATH", raising=False)


def small(**overrides) -> CameraConfig:
    """viky at its smallest size and highest rate, so a frame takes ~5 ms."""
    values = dict(producer=VIKY, serial="1", pixel_format="Mono8", width=128, height=100, frame_rate=200.0)
    values.update(overrides)
    return CameraConfig(**values)


def test_import_does_not_load_harvesters():
    code = "import sys, ard_edge.camera; print(sorted(m for m in ('harvesters', 'genicam', 'cv2') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_producer_discovery(tmp_path, monkeypatch, caplog):
    with pytest.raises(CameraError, match="no GenTL producer: set `producer:`"):
        find_producers()  # nothing configured: an error, never the simulator
    with caplog.at_level(logging.WARNING):
        assert find_producers(simulator=True) == [VIKY]  # only when asked, and announced
    assert "frames are simulated" in caplog.text
    monkeypatch.setenv("GENICAM_GENTL64_PATH", str(tmp_path / "missing"))
    with pytest.raises(CameraError, match=r"GENICAM_GENTL64_PATH=.*missing: no GenTL producer \(.cti\) there"):
        find_producers()  # a bad path does not fall back to the simulator either
    (tmp_path / "viky.cti").symlink_to(VIKY)
    directories = [str(tmp_path / "missing"), str(tmp_path), str(tmp_path)]
    monkeypatch.setenv("GENICAM_GENTL64_PATH", os.pathsep.join(directories))
    assert find_producers() == [VIKY.resolve()]  # listed twice, loaded once


def test_a_setting_the_camera_refuses_is_an_error_one_it_lacks_a_warning(caplog):
    with pytest.raises(CameraError, match=r"the camera refused Width = 5000 .*fix cameras\.cam0\.width"):
        GenICamCamera(small(width=5000), name="cam0").open()
    with pytest.raises(CameraError, match=r"refused AcquisitionFrameRate = 1000\.0"):
        GenICamCamera(small(frame_rate=1000.0), name="cam0").open()
    with caplog.at_level(logging.WARNING), GenICamCamera(small(exposure_us=500.0), name="cam0") as cam:
        assert cam.fetch(timeout_s=1.0).image.shape == (100, 128, 1)  # viky has no ExposureTime: it streams
    assert "camera has no ExposureTime feature; `exposure_us` ignored" in caplog.text


def test_list_devices_sees_three_viky_cameras():
    devices = list_devices(simulator=True)
    assert [d["serial"] for d in devices] == ["0", "1", "2"]
    assert {d["vendor"] for d in devices} == {"Machine Vision Games Ltd."}
    assert {d["model"] for d in devices} == {"Viky"}
    assert all(Path(d["producer"]).name == "viky.cti" for d in devices)


def test_open_by_serial_applies_features_and_streams():
    with GenICamCamera(small(), name="cam0") as cam:
        assert cam.device["serial"] == "1"
        node_map = cam.node_map
        assert (node_map.Width.value, node_map.Height.value) == (128, 100)
        assert (node_map.PixelFormat.value, node_map.AcquisitionFrameRate.value) == ("Mono8", 200.0)
        frames = [cam.fetch(timeout_s=1.0) for _ in range(5)]
        assert cam.stats == {"frames": 5, "timeouts": 0, "incomplete": 0, "reconnects": 0}
    for frame in frames:
        assert frame.image.shape == (100, 128, 1) and frame.image.dtype == np.uint8
        assert frame.camera == "cam0" and frame.pixel_format == "Mono8" and frame.source is None
    ids = [f.frame_id for f in frames]
    assert ids == sorted(set(ids))  # strictly increasing camera frame ids
    assert [f.received_ns for f in frames] == sorted(f.received_ns for f in frames)


def test_viky_colour_format_arrives_as_rgb():
    with GenICamCamera(small(pixel_format="RGBa8")) as cam:
        frame = cam.fetch(timeout_s=1.0)
    assert frame.image.shape == (100, 128, 3) and frame.pixel_format == "RGBa8"


def test_close_twice_then_open_again_in_the_same_process():
    cam = GenICamCamera(small())
    with cam:
        cam.fetch(timeout_s=1.0)
    cam.close()  # harmless
    with cam:  # the same object reopens
        assert cam.fetch(timeout_s=1.0).image.shape == (100, 128, 1)
    with GenICamCamera(small()) as again:  # and so does a new one on the same device
        assert again.fetch(timeout_s=1.0).image.shape == (100, 128, 1)


def test_fetch_timeout_is_a_camera_timeout():
    with GenICamCamera(small(frame_rate=5.0)) as cam:
        start = time.monotonic()
        with pytest.raises(CameraTimeout, match="no frame within 0.050 s"):
            cam.fetch(timeout_s=0.05)  # at 5 Hz the first frame is ~200 ms away
        assert time.monotonic() - start < 0.5
        assert cam.stats["timeouts"] == 1


def test_opening_keeps_the_ctrl_c_handler():
    before = signal.getsignal(signal.SIGINT)
    with GenICamCamera(small()):
        assert signal.getsignal(signal.SIGINT) is before  # harvesters would swallow Ctrl-C


def test_two_cameras_share_the_producer():
    a = GenICamCamera(small(serial="0"), name="a", reconnect_initial_s=0.05)
    with a, GenICamCamera(small(serial="2"), name="b") as b:
        assert a.fetch(timeout_s=1.0).camera == "a"
        assert b.fetch(timeout_s=1.0).camera == "b"
        a._ia.destroy()
        with pytest.raises(CameraDisconnected):
            a.fetch(timeout_s=1.0)
        assert a.fetch(timeout_s=1.0).camera == "a"  # reopened without disturbing b
        assert b.fetch(timeout_s=1.0).image.shape == (100, 128, 1)
        assert (a.stats["reconnects"], b.stats["reconnects"]) == (1, 0)
        a.close()
        assert b.fetch(timeout_s=1.0).image.shape == (100, 128, 1)


def test_vanished_device_raises_camera_error_then_reconnects(caplog):
    caplog.set_level(logging.WARNING, logger="ard_edge.camera")
    with GenICamCamera(small(exposure_us=500.0), name="cam0") as cam:  # viky has no ExposureTime
        cam.fetch(timeout_s=1.0)
        cam._ia.destroy()  # pull the device out from under the camera
        with pytest.raises(CameraDisconnected) as info:
            cam.fetch(timeout_s=1.0)
        assert isinstance(info.value, CameraError)
        start = time.monotonic()
        with pytest.raises(CameraDisconnected, match="next reconnect attempt"):
            cam.fetch(timeout_s=0.05)  # inside the 0.5 s backoff: waits its timeout, no reopen
        assert 0.04 < time.monotonic() - start < 0.4
        frame = cam.fetch(timeout_s=2.0)  # waits out the backoff, reopens, reapplies features
        assert frame.image.shape == (100, 128, 1)
        assert cam.stats["reconnects"] == 1
        assert cam.fetch(timeout_s=1.0).frame_id > frame.frame_id
    missing = [r for r in caplog.records if "no ExposureTime feature" in r.getMessage()]
    assert len(missing) == 1  # reported once, not again after the reconnect


def test_reconnect_backs_off_while_the_device_stays_busy():
    cam = GenICamCamera(small(), name="cam0", reconnect_initial_s=0.05)
    with cam:
        cam.fetch(timeout_s=1.0)
        cam._ia.destroy()
        with pytest.raises(CameraDisconnected):
            cam.fetch(timeout_s=1.0)
        with GenICamCamera(small(), name="thief"):  # takes the device while cam0 is away
            for wait_s in ("0.1", "0.2"):  # doubling from 0.05 s
                with pytest.raises(CameraDisconnected, match=f"reconnect failed; next attempt in {wait_s} s") as info:
                    cam.fetch(timeout_s=1.0)
                assert "already in use" in str(info.value.__cause__)
        assert cam.fetch(timeout_s=2.0).image.shape == (100, 128, 1)
        assert cam.stats["reconnects"] == 1


def test_device_selection_errors():
    with pytest.raises(CameraError, match=r"cam9: no device with serial '99'; found .*Viky \(serial 0\)"):
        GenICamCamera(small(serial="99"), name="cam9").open()
    with pytest.raises(CameraError, match="index 5, but only 3 device"):
        GenICamCamera(small(serial=None, index=5)).open()


def test_no_config_opens_the_first_device(monkeypatch, tmp_path):
    (tmp_path / "viky.cti").symlink_to(VIKY)
    monkeypatch.setenv("GENICAM_GENTL64_PATH", str(tmp_path))  # a producer, as on a line PC
    with open_source("cam0", {}) as cam:
        assert cam.device["index"] == 0
        assert cam.fetch(timeout_s=2.0).image.ndim == 3


def test_unloadable_producer_names_the_file(tmp_path):
    bogus = tmp_path / "Bogus.cti"
    bogus.write_bytes(b"not a shared library")
    with pytest.raises(CameraError, match=f"cannot load GenTL producer {bogus}"):
        open_source("cam0", {"cam0": CameraConfig(producer=bogus)})


def test_no_devices_names_the_loaded_producers():
    from harvesters.core import Harvester

    # A Harvester outside ard-edge holding viky leaves no devices for anyone else in the process.
    with Harvester() as other:
        other.add_file(str(VIKY))
        other.update()
        with pytest.raises(CameraError, match=r"no GenICam device found; producers loaded: .*viky\.cti"):
            GenICamCamera(CameraConfig(producer=VIKY)).open()


def test_trigger_needs_software_mode():
    with GenICamCamera(small()) as cam, pytest.raises(CameraError, match="needs `trigger: software`"):
        cam.trigger()


@needs_tlsimu
def test_software_trigger_on_tlsimu():
    config = CameraConfig(producer=TLSIMU, serial="SN_InterfaceA_0", width=64, height=48, trigger="software")
    # TLSimu (GenTL 1.5 era) and viky load side by side in one process.
    with GenICamCamera(small(), name="viky") as viky, GenICamCamera(config, name="trig") as cam:
        assert viky.fetch(timeout_s=1.0).image.shape == (100, 128, 1)
        assert cam.node_map.TriggerMode.value == "On"
        with pytest.raises(CameraTimeout):
            cam.fetch(timeout_s=0.1)  # nothing arrives until triggered
        for _ in range(3):
            cam.trigger()
            frame = cam.fetch(timeout_s=1.0)
            assert frame.image.shape == (48, 64, 1) and frame.pixel_format == "Mono8"
        assert cam.stats["frames"] == 3 and cam.stats["timeouts"] == 1


@needs_tlsimu
def test_tlsimu_colour_device_delivers_rgb8():
    config = CameraConfig(producer=TLSIMU, serial="SN_InterfaceA_1", width=64, height=48)
    with GenICamCamera(config) as cam:
        frame = cam.fetch(timeout_s=1.0)
    assert frame.image.shape == (48, 64, 3) and frame.pixel_format == "RGB8"
