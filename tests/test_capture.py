"""``ard-edge capture`` on real sources: folder replays, viky.cti (free run), TLSimu.cti (software trigger)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from ard_edge.camera import CameraConfig, GenICamCamera, simulator_producer
from ard_edge.cli.main import main
from ard_edge.runtime.capture import MANIFEST_NAME, Capture

VIKY = simulator_producer()
TLSIMU = Path(os.environ.get("ARD_EDGE_TLSIMU", Path.home() / ".cache/ard-edge/genicam-1.5.0/TLSimu.cti"))
ARD_EDGE = Path(sys.executable).parent / "ard-edge"
needs_viky = pytest.mark.skipif(VIKY is None, reason="the installed genicam package has no viky.cti")


@pytest.fixture(autouse=True)
def no_producer_path(monkeypatch):
    monkeypatch.delenv("GENICAM_GENTL64_PATH", raising=False)


@pytest.fixture
def recording(tmp_path) -> Path:
    """Six frames; the fourth repeats the third (a stopped belt)."""
    folder = tmp_path / "recording"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 50), dtype=np.uint8) for _ in range(5)]
    images.insert(3, images[2])
    for index, image in enumerate(images):
        cv2.imwrite(str(folder / f"{index}.png"), image)
    return folder


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]


def pngs(out: Path) -> list[Path]:
    return sorted(out.glob("*.png"))


def run_cli(args, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_a_recording_becomes_lossless_pngs_with_one_manifest_and_skips_repeats(recording, tmp_path, capsys):
    out = tmp_path / "train" / "good"
    main(["capture", "--camera", f"folder:{recording}", "--out", str(out), "--frames", "10"])
    printed = capsys.readouterr().out
    assert "saved 5 images" in printed and "skipped 1 identical" in printed and "end_of_stream" in printed
    records = manifest(out)
    assert [r["file"] for r in records] == [p.name for p in pngs(out)]
    assert [Path(r["source"]).name for r in records] == ["0.png", "1.png", "2.png", "4.png", "5.png"]
    for record in records:  # lossless: the saved pixels are the frame's
        saved = cv2.imread(str(out / record["file"]), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(saved, cv2.imread(record["source"], cv2.IMREAD_UNCHANGED))
        assert record["pixel_format"] == "Mono8" and record["camera"] == f"folder:{recording}"


def test_a_full_folder_is_refused_and_append_never_overwrites(recording, tmp_path, capsys):
    out = tmp_path / "good"
    out.mkdir()
    (out / "mine.png").write_bytes(b"someone's image")
    code, _, err = run_cli(["capture", "--camera", f"folder:{recording}", "--out", out, "--frames", "2"], capsys)
    assert code == 2 and err.strip().startswith("error: ") and "--append" in err and len(err.strip().splitlines()) == 1
    main(["capture", "--camera", f"folder:{recording}", "--out", str(out), "--frames", "2", "--append"])
    main(["capture", "--camera", f"folder:{recording}", "--out", str(out), "--frames", "3", "--append"])
    names = [p.name for p in pngs(out)]
    assert (out / "mine.png").read_bytes() == b"someone's image"
    assert len(names) == 6 and len(manifest(out)) == 5  # 2 + 3 new images, each under its own name
    assert [r["file"] for r in manifest(out)] == sorted(set(names) - {"mine.png"})


def test_a_missing_camera_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "never"
    code, _, err = run_cli(["capture", "--camera", "folder:/nonexistent/x", "--out", out], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "/nonexistent/x" in err
    assert not out.exists()
    config = tmp_path / "ard-edge.yaml"
    config.write_text("cameras:\n  cam0:\n    simulator: true\n")
    code, _, err = run_cli(["capture", "--camera", "cam9", "--config", config, "--out", out], capsys)
    assert code == 1 and "unknown camera 'cam9'" in err and not out.exists()


@needs_viky
def test_a_free_running_camera_keeps_its_roi_and_at_most_one_image_per_interval(tmp_path):
    config = CameraConfig(producer=VIKY, serial="2", pixel_format="Mono8", width=128, height=100,
                          frame_rate=100.0, roi=(8, 4, 60, 50))
    with GenICamCamera(config, name="cam2") as camera:
        job = Capture(camera, tmp_path, frames=4, every_ms=40)
        stats = job.run()
    records = manifest(tmp_path)
    assert stats.saved == 4 == len(records) and stats.stop_reason == "frames"
    assert stats.between > 0  # 100 fps with 40 ms between images: frames were passed over
    assert all(cv2.imread(str(tmp_path / r["file"]), cv2.IMREAD_UNCHANGED).shape == (50, 60) for r in records)
    assert {(r["width"], r["height"], tuple(r["roi"])) for r in records} == {(60, 50, (8, 4, 60, 50))}
    assert len({r["frame_id"] for r in records}) == 4 and {r["device"]["serial"] for r in records} == {"2"}


@needs_viky
def test_ctrl_c_keeps_what_was_saved(tmp_path):
    config = tmp_path / "ard-edge.yaml"
    config.write_text(f"cameras:\n  cam0:\n    producer: {VIKY}\n    serial: \"2\"\n    width: 128\n    height: 100\n")
    out = tmp_path / "good"
    proc = subprocess.Popen([ARD_EDGE, "capture", "--camera", "cam0", "--config", config, "--out", out,
                             "--frames", "100000", "--every-ms", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while len(pngs(out)) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "stopped by interrupted" in stdout and "Traceback" not in stderr
    assert [r["file"] for r in manifest(out)] == [p.name for p in pngs(out)]  # every image kept, each in the manifest
    assert not list(out.glob(".*.tmp"))


@pytest.mark.skipif(not TLSIMU.is_file(), reason=f"{TLSIMU} missing: run `python scripts/fetch_tlsimu.py`")
def test_a_software_triggered_camera_gives_one_image_per_trigger(tmp_path):
    config = CameraConfig(producer=TLSIMU, serial="SN_InterfaceA_0", width=64, height=48, trigger="software",
                          timeout_ms=2000)
    with GenICamCamera(config, name="line") as camera:
        stats = Capture(camera, tmp_path, frames=5, every_ms=10_000).run()  # every_ms is for free run only
    assert stats.saved + stats.identical == 5 and len(manifest(tmp_path)) == stats.saved >= 1
    assert stats.between == 0
