"""The streaming runtime on real parts: viky.cti (and TLSimu.cti when fetched), a real ONNX Runtime engine.

Timing is never asserted: the machine may be shared. Where a test needs inference to fall
behind the camera, a real engine gets a sleep injected (``_Injected``) instead of hoping the
machine is slow enough.
"""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from _waiting import wait_for as _wait_for
from ard_edge.camera import CameraConfig, FolderReplay, GenICamCamera, open_source, simulator_producer
from ard_edge.engines import open_engine
from ard_edge.engines.base import InputSpec
from ard_edge.errors import ConfigError, EngineError
from ard_edge.export import export_onnx
from ard_edge.model import ARDModel, ModelConfig, build_teacher, save_checkpoint
from ard_edge.runtime import (
    DecisionLog,
    EvidenceSaver,
    Pipeline,
    RuntimeConfig,
    Sink,
    prepare_frame,
    run_pipeline,
)
from ard_edge.runtime.predict import collect_images, predict_files

torch.set_num_threads(2)

VIKY = simulator_producer()
TLSIMU = Path(os.environ.get("ARD_EDGE_TLSIMU", Path.home() / ".cache/ard-edge/genicam-1.5.0/TLSimu.cti"))
ARD_EDGE = Path(sys.executable).parent / "ard-edge"
SIMULATOR_ANNOUNCED = "using the GenICam simulator"  # the one warning `simulator: true` prints
DECISION_KEYS = {"frame_id", "camera", "timestamp", "received", "score", "normalized_score", "verdict",
                 "latency_ms", "engine"}

pytestmark = pytest.mark.skipif(VIKY is None, reason="the installed genicam package has no viky.cti")


@pytest.fixture(autouse=True)
def no_producer_path(monkeypatch):
    monkeypatch.delenv("GENICAM_GENTL64_PATH", raising=False)


def viky(**overrides) -> CameraConfig:
    """viky at a small size; serial 2 so these tests never share a device with another open camera."""
    values = dict(producer=VIKY, serial="2", pixel_format="Mono8", width=128, height=100, frame_rate=100.0)
    values.update(overrides)
    return CameraConfig(**values)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A 64 px mono model whose threshold splits the replay images: some PASS, some FAIL."""
    folder = tmp_path_factory.mktemp("runtime")
    replay = _write_replay_images(folder / "replay")
    model = ARDModel(ModelConfig(backbone="efficientnet_lite0", image_size=64, distillation=True, bank_size=256), build_teacher("efficientnet_lite0")).eval()
    threshold = _threshold_splitting(model, replay)
    save_checkpoint(folder / "m.ckpt", model, {"threshold": threshold, "score_stats": {"min": 0.0}, "normalization": {}})
    export_onnx(folder / "m.ckpt", folder / "mono.onnx", channels=1, batch=None)
    export_onnx(folder / "m.ckpt", folder / "mono_b2.onnx", channels=1, batch=2)
    return SimpleNamespace(folder=folder, replay=replay, mono=folder / "mono.onnx", fixed2=folder / "mono_b2.onnx")


def _write_replay_images(folder: Path, count: int = 12) -> Path:
    """Grey textures of two sizes; odd ones carry a dark scratch (the 'defects')."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        height = 96 if i % 3 else 110
        texture = cv2.GaussianBlur(rng.integers(60, 200, (height, 120), dtype=np.uint8), (7, 7), 0)
        if i % 2:
            cv2.line(texture, (10, 20 + i), (110, 70), 0, 4)
        cv2.imwrite(str(folder / f"{i:02d}_{'defect' if i % 2 else 'good'}.png"), texture)
    return folder


def _threshold_splitting(model, replay: Path) -> float:
    """Midpoint of the widest gap between the middle scores, so ONNX-vs-torch noise cannot flip a verdict."""
    from ard_edge.model.fused import fused_from_checkpoint

    fused = fused_from_checkpoint(model, {"threshold": 0.0, "score_stats": {"min": 0.0}})
    spec = InputSpec(64, 64, 1)
    with FolderReplay(replay) as source:
        frames = np.stack([prepare_frame(source.fetch(), spec) for _ in source.files])
    with torch.no_grad():
        scores = np.sort(fused(torch.from_numpy(frames))[1].numpy().reshape(-1))
    middle = range(len(scores) // 4, 3 * len(scores) // 4)
    widest = max(middle, key=lambda i: scores[i + 1] - scores[i])
    return float((scores[widest] + scores[widest + 1]) / 2)


class _Injected:
    """A real engine with a delay or faults injected into ``infer``; everything else passes through."""

    def __init__(self, engine, delay_s: float = 0.0, fail_calls: tuple[int, ...] = ()):
        self._engine = engine
        self.delay_s = delay_s
        self.fail_calls = fail_calls
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def infer(self, frames):
        self.calls += 1
        if self.calls in self.fail_calls:
            raise EngineError("injected engine fault")
        time.sleep(self.delay_s)
        return self._engine.infer(frames)


def read_decisions(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "decisions.jsonl").read_text().splitlines()]


def assert_accounted(summary) -> None:
    assert summary.frames_captured == sum(summary.decisions.values()) + summary.dropped
    assert summary.lost == 0


# -- cameras ---------------------------------------------------------------------------------


def test_viky_run_decides_every_frame_and_releases_the_device(models, tmp_path):
    camera = GenICamCamera(viky(), name="cam0")  # not opened: the pipeline opens and closes it
    switch_interval_s = sys.getswitchinterval()
    with open_engine(models.mono) as engine:
        summary = run_pipeline(camera, engine, RuntimeConfig(batch=4), [DecisionLog(tmp_path)], max_frames=40)
        assert not camera.is_open and sys.getswitchinterval() == switch_interval_s  # restored
        assert summary.frames_captured == 40 and summary.stop_reason == "max_frames"
        assert_accounted(summary)
        decisions = read_decisions(tmp_path)
        assert len(decisions) == sum(summary.decisions.values()) == 40 - summary.dropped
        assert all(DECISION_KEYS <= d.keys() and d["camera"] == "cam0" and d["latency_ms"] > 0 for d in decisions)
        assert all(d["verdict"] in ("PASS", "FAIL") and d["engine"] == engine.name for d in decisions)
        ids = [d["frame_id"] for d in decisions]
        assert ids == sorted(ids)  # decisions leave in capture order
        assert 1 <= summary.mean_batch <= 4 and summary.latency_ms["p50"] <= summary.latency_ms["max"]
        assert set(summary.to_dict()) >= {"frames_captured", "decisions", "dropped", "timeouts", "incomplete",
                                          "reconnects", "sink_stats", "sink_notes", "latency_ms",
                                          "engine_ms_p50", "throughput_fps", "wall_s"}
        # The device was released: the same camera opens again in this process.
        with open_source("cam0", {"cam0": viky()}) as again:
            second = run_pipeline(again, engine, max_frames=5)
            assert again.is_open  # the caller opened it, the caller closes it
        assert second.frames_captured == 5 and second.lost == 0


def test_free_run_camera_drops_the_oldest_frames_when_inference_falls_behind(models, caplog):
    caplog.set_level(logging.WARNING, logger="ard_edge.runtime")
    with open_engine(models.mono) as real, GenICamCamera(viky(frame_rate=200.0), name="cam0") as camera:
        engine = _Injected(real, delay_s=0.03)  # ~30 fps against a 200 fps camera
        seen = []
        summary = run_pipeline(camera, engine, RuntimeConfig(queue_size=2), [_Recorder(seen)], max_frames=60)
    assert summary.dropped > 0 and summary.decisions["ERROR"] == 0
    assert_accounted(summary)
    assert len(seen) == sum(summary.decisions.values())
    assert [d.frame_id for d in seen] == sorted(d.frame_id for d in seen)
    assert any("inference is behind the camera" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(not TLSIMU.is_file(), reason=f"{TLSIMU} missing: run `python scripts/fetch_tlsimu.py`")
def test_triggered_camera_is_held_back_never_dropped(models, caplog):
    """TLSimu (software trigger): every triggered part gets a decision although inference is slower."""
    caplog.set_level(logging.WARNING, logger="ard_edge.runtime")
    config = CameraConfig(producer=TLSIMU, serial="SN_InterfaceA_0", width=64, height=48, trigger="software",
                          num_buffers=32)
    with open_engine(models.mono) as real, GenICamCamera(config, name="line1") as camera:
        engine = _Injected(real, delay_s=0.03)
        pipeline = Pipeline(camera, engine, RuntimeConfig(queue_size=1))
        pipeline.start()
        for _ in range(20):  # a part every 10 ms; inference needs 30+
            camera.trigger()
            time.sleep(0.01)
        # The simulator itself may miss a trigger on a loaded machine; what it delivers must all be decided.
        _wait_for(lambda: pipeline.status().frames_captured == 20, timeout_s=10, fail=False)
        pipeline.stop()
        summary = pipeline.join(timeout_s=30)
        delivered = camera.stats["frames"]
    assert summary.frames_captured == delivered >= 5 and summary.dropped == 0
    assert sum(summary.decisions.values()) == delivered and summary.decisions["ERROR"] == 0
    assert summary.backpressure_s > 0
    assert any("holding the camera back" in r.getMessage() for r in caplog.records)


def test_camera_vanishing_mid_run_loses_no_decision(models, tmp_path):
    camera = GenICamCamera(viky(), name="cam0", reconnect_initial_s=0.05)
    with open_engine(models.mono) as engine, camera:
        pipeline = Pipeline(camera, engine, sinks=[DecisionLog(tmp_path / "a")])
        pipeline.start()
        _wait_for(lambda: pipeline.status().frames_captured >= 10)
        with camera._io_lock:  # between two polls, as a driver invalidates a lost device
            camera._ia.destroy()  # the device goes away under the running pipeline
        _wait_for(lambda: camera.stats["reconnects"] == 1 and pipeline.status().frames_captured >= 30)
        pipeline.stop()
        summary = pipeline.join(timeout_s=20)
        assert summary.stop_reason == "stopped" and summary.reconnects == 1 and summary.error is None
        assert_accounted(summary)
        assert len(read_decisions(tmp_path / "a")) == sum(summary.decisions.values())

        # Closing the source under the pipeline ends the run cleanly, every captured frame decided.
        pipeline = Pipeline(camera.open(), engine, sinks=[DecisionLog(tmp_path / "b")])
        pipeline.start()
        _wait_for(lambda: pipeline.status().frames_captured >= 10)
        camera.close()
        summary = pipeline.join(timeout_s=20)
    assert summary.stop_reason == "camera_error" and "closed while streaming" in summary.error
    assert_accounted(summary)
    assert len(read_decisions(tmp_path / "b")) == sum(summary.decisions.values())


# -- replay, batching, errors, evidence ---------------------------------------------------------


def test_folder_replay_fails_exactly_where_predict_does(models, tmp_path):
    with open_engine(models.mono) as engine:
        with FolderReplay(models.replay) as source:
            summary = run_pipeline(source, engine, RuntimeConfig(batch=4), [DecisionLog(tmp_path / "run")])
        reference = predict_files(engine, collect_images([models.replay]), tmp_path / "predict")
    ours = {Path(d["source"]).name: d for d in read_decisions(tmp_path / "run")}
    theirs = {Path(p.path).name: p for p in reference}
    assert summary.stop_reason == "end_of_stream" and summary.dropped == 0  # an unpaced replay waits for us
    assert ours.keys() == theirs.keys() and len(ours) == 12
    assert {name: d["verdict"] for name, d in ours.items()} == {name: p.verdict for name, p in theirs.items()}
    assert {"PASS", "FAIL"} <= {p.verdict for p in reference}
    for name, decision in ours.items():
        assert decision["score"] == pytest.approx(theirs[name].score, rel=1e-4)


def test_fixed_batch_engine_gets_padded_batches(models):
    with open_engine(models.fixed2) as engine, FolderReplay(models.replay) as source:
        assert engine.input_spec.fixed_batch == 2
        summary = run_pipeline(source, engine, RuntimeConfig(batch=8, max_wait_ms=0), max_frames=11)
    assert summary.decisions["ERROR"] == 0 and sum(summary.decisions.values()) == 11
    assert summary.mean_batch < 2  # the odd frame went alone, padded to 2


def test_micro_batches_fill_up_to_the_batch_size(models):
    with open_engine(models.mono) as engine, FolderReplay(models.replay) as source:
        summary = run_pipeline(source, engine, RuntimeConfig(batch=4, max_wait_ms=2000))
    # An unpaced replay keeps the queue full, so every batch fills before the wait runs out.
    assert summary.batches == 3 and summary.mean_batch == 4
    assert summary.throughput_fps > 0 and summary.engine_ms_p50 > 0


def test_bad_frames_and_engine_faults_become_error_decisions(models, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("a.png", "c.png", "d.png", "e.png"):
        (folder / name).write_bytes((models.replay / "00_good.png").read_bytes())
    cv2.imwrite(str(folder / "b.png"), np.full((96, 120, 3), 128, np.uint8))  # a colour frame on a mono line
    with open_engine(models.mono) as real:
        engine = _Injected(real, fail_calls=(3,))  # calls: a, [b is bad], c, d <- fails, e
        with FolderReplay(folder) as source:
            summary = run_pipeline(source, engine, RuntimeConfig(), [DecisionLog(tmp_path / "run")])
        decisions = {Path(d["source"]).name: d for d in read_decisions(tmp_path / "run")}
        assert summary.decisions["ERROR"] == 2 and sum(summary.decisions.values()) == 5
        assert "export --channels 3" in decisions["b.png"]["error"]
        assert "injected engine fault" in decisions["d.png"]["error"]
        assert all(decisions[n]["reject"] and decisions[n]["score"] is None for n in ("b.png", "d.png"))
        assert decisions["a.png"]["error"] is None
        with FolderReplay(folder) as source:  # error_is_reject: false lets ERROR parts through
            run_pipeline(source, real, RuntimeConfig(error_is_reject=False), [DecisionLog(tmp_path / "lenient")])
    lenient = {Path(d["source"]).name: d for d in read_decisions(tmp_path / "lenient")}
    assert lenient["b.png"]["verdict"] == "ERROR" and not lenient["b.png"]["reject"]


def test_channel_mismatch_is_one_error_at_start(models):
    with open_engine(models.mono) as engine:
        colour = GenICamCamera(viky(pixel_format="RGBa8"), name="cam0")
        with pytest.raises(EngineError, match=r"3-channel frames \(RGBa8\).*ard-edge export --channels 3"):
            Pipeline(colour, engine).start()
        assert not colour.is_open  # what start() opened, it closed again


def test_mono_engine_selects_mono8_on_a_colour_camera(models, caplog):
    # A config without pixel_format leaves the format to the device; viky starts in RGBa8 and
    # offers Mono8. Opening it once in RGBa8 makes that the state even if viky kept an older one.
    with GenICamCamera(viky(pixel_format="RGBa8"), name="cam0"):
        pass
    with open_engine(models.mono) as engine, caplog.at_level(logging.WARNING):
        camera = GenICamCamera(viky(pixel_format=None), name="cam0")
        summary = run_pipeline(camera, engine, max_frames=3)
    assert summary.frames_captured == 3 and summary.decisions["ERROR"] == 0
    assert "switched the pixel format from RGBa8 to Mono8" in caplog.text


def test_evidence_for_fails_and_sampled_passes(models, tmp_path):
    with open_engine(models.mono) as engine, FolderReplay(models.replay) as source:
        saver = EvidenceSaver(tmp_path, save_pass_every=2, min_free_disk_mb=0)
        summary = run_pipeline(source, engine, RuntimeConfig(), [DecisionLog(tmp_path), saver])
    fails, passes = summary.decisions["FAIL"], summary.decisions["PASS"]
    assert fails > 0 and summary.sink_stats["evidence_saved"] == fails + passes // 2 and summary.sink_stats["evidence_skipped"] == 0
    assert len(list((tmp_path / "fail").glob("*_heatmap.png"))) == fails
    assert len(list((tmp_path / "fail").glob("*.png"))) == 2 * fails
    assert len(list((tmp_path / "pass").glob("*_heatmap.png"))) == passes // 2
    frame = next(p for p in (tmp_path / "fail").glob("*.png") if not p.stem.endswith("_heatmap"))
    assert cv2.imread(str(frame), cv2.IMREAD_UNCHANGED).shape[:2] in ((96, 120), (110, 120))
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no partial files


def test_roi_is_cropped_before_resizing_and_checked_at_start(models, tmp_path):
    with open_engine(models.mono) as engine:
        assert Pipeline(GenICamCamera(viky(roi=(8, 4, 100, 90))), engine).roi == (8, 4, 100, 90)  # from the config
        with FolderReplay(models.replay) as source:
            saver = EvidenceSaver(tmp_path, save_pass_every=1, min_free_disk_mb=0)
            summary = run_pipeline(source, engine, RuntimeConfig(), [saver], max_frames=2, roi=(10, 20, 60, 40))
        assert summary.sink_stats["evidence_saved"] == 2
        for overlay in tmp_path.rglob("*_heatmap.png"):
            assert cv2.imread(str(overlay)).shape == (40, 60, 3)  # the heatmap covers what the engine saw
        with FolderReplay(models.replay) as source, pytest.raises(ConfigError, match=r"roi.*does not fit a 120x110 frame"):
            Pipeline(source, engine, roi=(100, 0, 60, 40)).start()


def test_disk_floor_stops_images_not_decisions(models, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="ard_edge.runtime")
    with open_engine(models.mono) as engine, FolderReplay(models.replay) as source:
        saver = EvidenceSaver(tmp_path, min_free_disk_mb=1e12)  # an exabyte: never there
        summary = run_pipeline(source, engine, RuntimeConfig(), [DecisionLog(tmp_path), saver])
    assert len(read_decisions(tmp_path)) == 12 and summary.decisions["FAIL"] > 0
    assert summary.sink_stats["evidence_saved"] == 0 and summary.sink_stats["evidence_skipped"] == summary.decisions["FAIL"]
    assert not (tmp_path / "fail").exists() or not list((tmp_path / "fail").iterdir())
    assert len([r for r in caplog.records if "evidence images stop" in r.getMessage()]) == 1


# -- the command line ---------------------------------------------------------------------------


def _cli(args, tmp_path, **popen):
    env = {k: v for k, v in os.environ.items() if k != "GENICAM_GENTL64_PATH"}
    return subprocess.Popen([str(ARD_EDGE), "run", *map(str, args)], cwd=tmp_path, env=env, text=True, **popen)


def _config(tmp_path, **camera) -> Path:
    camera.setdefault("simulator", "producer" not in camera)  # the simulator is never a fallback: ask for it
    lines = ["cameras:", "  cam0:"] + [f"    {k}: {json.dumps(v)}" for k, v in camera.items()]
    lines += ["runtime:", "  min_free_disk_mb: 0"]
    path = tmp_path / "ard-edge.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "camera, spec, message",
    [
        ({"serial": "2"}, "cam9", "unknown camera 'cam9': configured aliases are cam0"),
        ({"producer": "/nonexistent/Missing.cti"}, "cam0", "GenTL producer not found: /nonexistent/Missing.cti"),
        ({"serial": "2", "pixel_format": "RGBa8"}, "cam0", r"3-channel frames \(RGBa8\).*ard-edge export --channels 3"),
    ],
    ids=["unknown-alias", "missing-producer", "channel-mismatch"],
)
def test_cli_start_up_errors_are_one_line(models, tmp_path, camera, spec, message):
    config = _config(tmp_path, **camera)
    proc = _cli(["--camera", spec, "--engine", models.mono, "--config", config, "--max-frames", 3], tmp_path,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    lines = [line for line in stderr.strip().splitlines() if SIMULATOR_ANNOUNCED not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert re.search(message, lines[0]), lines[0]


def test_cli_sigint_drains_prints_the_summary_and_exits_0(models, tmp_path):
    config = _config(tmp_path, serial="2", pixel_format="Mono8", width=128, height=100, frame_rate=50)
    out = tmp_path / "out"
    with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
        proc = _cli(["--camera", "cam0", "--engine", models.mono, "--config", config, "--out", out], tmp_path,
                    stdout=stdout, stderr=stderr)
        try:
            _wait_for(lambda: _lines(out / "decisions.jsonl") >= 5, timeout_s=60)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0, (tmp_path / "stderr").read_text()
        finally:
            proc.kill()
    printed = (tmp_path / "stdout").read_text()
    assert "frames captured" in printed and "latency ms: p50" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "stopped" and summary["lost"] == 0
    assert _lines(out / "decisions.jsonl") == sum(summary["decisions"].values())
    assert "stopping acquisition" in (tmp_path / "stderr").read_text()


def test_cli_second_signal_forces_exit(models, tmp_path):
    config = _config(tmp_path, serial="2", pixel_format="Mono8", width=128, height=100, frame_rate=50)
    out = tmp_path / "out"
    proc = _cli(["--camera", "cam0", "--engine", models.mono, "--config", config, "--out", out], tmp_path,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: _lines(out / "decisions.jsonl") >= 2, timeout_s=60)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGTERM)  # a different signal: two SIGINTs could merge into one
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "forced exit" in stderr


# -- helpers ------------------------------------------------------------------------------------


class _Recorder(Sink):
    """Keeps decisions in memory."""

    def __init__(self, seen: list):
        self.seen = seen

    def on_decision(self, decision, frame, result):
        self.seen.append(decision)


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0
