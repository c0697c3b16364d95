"""Runtime parts that need no camera or engine: queues, decision log, evidence queue, config, statistics."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ard_edge.camera import Frame, FolderReplay
from ard_edge.engines.base import InferenceResult, InputSpec
from ard_edge.errors import ConfigError
from ard_edge.runtime import Decision, DecisionLog, EvidenceSaver, RunInfo, RuntimeConfig, batch_size_for
from ard_edge.runtime._queue import CLOSED, EMPTY, StageQueue
from ard_edge.runtime.config import load_app_config
from ard_edge.runtime.decision import decide
from ard_edge.runtime.sinks.base import Sink, SinkFanout
from ard_edge.runtime.summary import Reservoir


def decision(frame_id: int, verdict: str = "FAIL") -> Decision:
    return Decision(frame_id=frame_id, camera="cam0", timestamp=1000 * frame_id, received="2026-11-28T15:30:06.123Z",
                    score=1.5, normalized_score=0.7, verdict=verdict, latency_ms=4.2, engine="onnxruntime:fp32:m.onnx",
                    reject=verdict != "PASS", engine_ms=3.0)


# -- queues ------------------------------------------------------------------------------------


def test_drop_oldest_queue_keeps_the_newest_and_returns_the_evicted():
    queue = StageQueue(2, drop_oldest=True)
    assert [queue.put(i) for i in range(4)] == [None, None, 0, 1]
    queue.close()
    assert [queue.get(), queue.get(), queue.get()] == [2, 3, CLOSED]


def test_blocking_queue_holds_the_producer_back_and_loses_nothing():
    queue = StageQueue(1, drop_oldest=False)
    assert queue.get(timeout_s=0.01) is EMPTY

    def produce():
        for i in range(5):
            queue.put(i)
        queue.close()

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.05)  # the producer is now waiting for room
    taken = []
    while (item := queue.get(timeout_s=5)) is not CLOSED:
        taken.append(item)
    producer.join()
    assert taken == [0, 1, 2, 3, 4] and queue.blocked_s > 0


# -- decision log ------------------------------------------------------------------------------


def test_decision_log_rotates_by_size_and_appends_on_restart(tmp_path):
    line_bytes = len(json.dumps(decision(0).to_dict(), separators=(",", ":"))) + 1
    with DecisionLog(tmp_path, rotate_mb=3.5 * line_bytes / 1e6) as log:  # three lines a file
        for i in range(10):
            log.on_decision(decision(i), None, None)
            assert (tmp_path / "decisions.jsonl").read_text().count("\n") == i % 3 + 1  # flushed per line
    files = ["decisions.3.jsonl", "decisions.2.jsonl", "decisions.1.jsonl", "decisions.jsonl"]  # oldest first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)
    ids = [json.loads(line)["frame_id"] for name in files for line in (tmp_path / name).read_text().splitlines()]
    assert ids == list(range(10))
    with DecisionLog(tmp_path, rotate_mb=1.0) as log:  # a restart appends, never truncates
        log.on_decision(decision(10), None, None)
    lines = (tmp_path / "decisions.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame_id"] for line in lines] == [9, 10]
    assert set(json.loads(lines[0])) >= {"frame_id", "camera", "timestamp", "received", "score",
                                          "normalized_score", "verdict", "latency_ms", "engine"}


# -- evidence ----------------------------------------------------------------------------------


def test_full_evidence_queue_skips_images_never_decisions(tmp_path):
    frame = Frame(np.full((40, 50, 1), 100, np.uint8), "cam0", 1)
    result = InferenceResult(np.ones((1, 1, 16, 16), np.float32), np.ones(1, np.float32),
                             np.ones(1, np.float32), np.ones(1, bool))
    saver = EvidenceSaver(tmp_path, min_free_disk_mb=0, queue_size=1)
    for i in range(3):  # the writer thread has not started: the queue holds one image
        saver.on_decision(decision(i), frame, result)
    saver.on_decision(decision(3, "PASS"), frame, result)  # PASS images are off by default
    saver.on_start(RunInfo("cam0", "e", 0.5, InputSpec(16, 16, 1), (10, 5, 20, 30), RuntimeConfig()))
    saver.close()
    saver.close()  # harmless twice
    stats = saver.stats()
    assert stats["evidence_saved"] == 1 and stats["evidence_skipped_queue_full"] == 2 and stats["evidence_skipped"] == 2
    saved = sorted(p.name for p in (tmp_path / "fail").iterdir())
    assert saved == ["20261128T153006.123Z_cam0_00000000.png", "20261128T153006.123Z_cam0_00000000_heatmap.png"]
    import cv2

    assert cv2.imread(str(tmp_path / "fail" / saved[1])).shape == (30, 20, 3)  # the overlay shows the ROI


# -- configuration -----------------------------------------------------------------------------


def test_runtime_section_is_typed_and_checked(tmp_path):
    path = tmp_path / "ard-edge.yaml"
    path.write_text("cameras:\n  cam0: {pixel_format: Mono8}\nruntime:\n  batch: 4\n  rotate_mb: 1\n")
    app = load_app_config(path)
    assert app.runtime.batch == 4 and app.runtime.rotate_mb == 1.0 and app.runtime.error_is_reject
    assert app.cameras["cam0"].pixel_format == "Mono8"
    path.write_text("runtime:\n  batch_sze: 4\n")
    with pytest.raises(ConfigError, match=r"ard-edge.yaml: runtime\.batch_sze: unknown key \(did you mean batch\?\)"):
        load_app_config(path)
    path.write_text("runtime:\n  max_wait_ms: -1\n")
    with pytest.raises(ConfigError, match=r"runtime\.max_wait_ms: must be a finite number from 0 to 60000, got -1"):
        load_app_config(path)
    for value in (".inf", ".nan", "-.inf"):  # YAML's non-finite floats would crash a stage thread
        path.write_text(f"runtime:\n  max_wait_ms: {value}\n")
        with pytest.raises(ConfigError, match=r"runtime\.max_wait_ms: must be a finite number, got"):
            load_app_config(path)
    path.write_text("runtime:\n  startup_timeout_s: 0\n")
    with pytest.raises(ConfigError, match=r"runtime\.startup_timeout_s: must be a finite number above 0"):
        load_app_config(path)


def test_batch_size_respects_the_engine_range():
    assert batch_size_for(InputSpec(64, 64, 1), 4) == 4  # dynamic
    assert batch_size_for(InputSpec(64, 64, 1, min_batch=2, max_batch=2), 8) == 2  # fixed: padded
    assert batch_size_for(InputSpec(64, 64, 1, min_batch=1, max_batch=3), 8) == 3


def _result(anomalous: bool, score: float = 1.5) -> InferenceResult:
    return InferenceResult(np.zeros((1, 1, 4, 4), np.float32), np.array([score], np.float32),
                           np.array([0.7], np.float32), np.array([anomalous]))


def test_verdict_rule_without_threads():
    frame = Frame(np.zeros((4, 4, 1), np.uint8), "cam0", 7, timestamp_ns=5, received_ns=1_000_000)
    fail = decide(frame, _result(True), None, "e", 2.0, decided_ns=4_000_000, wall_offset_ns=0)
    assert (fail.verdict, fail.reject, fail.score, fail.latency_ms, fail.engine_ms) == ("FAIL", True, 1.5, 3.0, 2.0)
    passed = decide(frame, _result(False), None, "e", 2.0, decided_ns=4_000_000, wall_offset_ns=0)
    assert (passed.verdict, passed.reject) == ("PASS", False)
    error = decide(frame, _result(True), "bad frame", "e", 2.0, decided_ns=4_000_000, wall_offset_ns=0)
    assert (error.verdict, error.reject, error.score, error.engine_ms, error.error) == ("ERROR", True, None, None, "bad frame")
    lenient = decide(frame, None, "engine fault", "e", None, 4_000_000, 0, error_is_reject=False)
    assert (lenient.verdict, lenient.reject) == ("ERROR", False)


def test_sink_fanout_logs_a_failing_sink_once_and_keeps_the_others(caplog):
    class Broken(Sink):
        def on_decision(self, decision, frame, result):
            raise RuntimeError("sink down")

    class Counting(Sink):
        seen = 0

        def on_decision(self, decision, frame, result):
            Counting.seen += 1

        def stats(self):
            return {"counted": Counting.seen}

        def summary_note(self):
            return f"counted {Counting.seen}"

    fanout = SinkFanout([Broken(), Counting()])
    frame = Frame(np.zeros((4, 4, 1), np.uint8), "cam0", 1)
    decision = decide(frame, _result(False), None, "e", 1.0, 0, 0)
    for _ in range(3):
        fanout.on_decision(decision, frame, None)
    assert Counting.seen == 3 and caplog.text.count("sink Broken failed") == 1
    assert fanout.stats() == {"counted": 3} and fanout.notes() == ["counted 3"]


def test_only_live_free_running_sources_drop(tmp_path):
    assert not FolderReplay(tmp_path).drops_when_behind  # an unpaced replay waits for the pipeline
    assert FolderReplay(tmp_path, fps=30).drops_when_behind  # a paced one stands in for a camera


def test_reservoir_is_exact_when_small_and_bounded_when_large():
    small = Reservoir()
    for value in range(1, 101):
        small.add(float(value))
    assert small.percentiles(50)[0] == pytest.approx(50.5) and small.max == 100
    big = Reservoir(capacity=1000)
    for value in range(100_000):
        big.add(float(value))
    assert len(big._samples) == 1000 and big.max == 99_999
    assert big.percentiles(50)[0] == pytest.approx(50_000, rel=0.1)


def test_import_is_light_and_run_help_works():
    code = ("import sys, ard_edge.runtime; "
            "print(sorted(m for m in ('harvesters', 'onnxruntime', 'torch', 'cv2') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    ard_edge = Path(sys.executable).parent / "ard-edge"
    result = subprocess.run([str(ard_edge), "run", "--help"], capture_output=True, text=True, check=True)
    for option in ("--camera", "--engine", "--config", "--out", "--max-frames", "--duration", "--batch",
                   "--max-wait-ms", "--fps", "--loop"):
        assert option in result.stdout


def test_console_status_line_and_quiet_log_mode():
    import io

    from ard_edge.cli.run_cmds import ConsoleStatus
    from ard_edge.runtime import LiveStatus

    status = LiveStatus("cam0", 12.0, 100, {"PASS": 90, "FAIL": 7, "ERROR": 1}, 2, 29.5, 12.34, 40.0, 3)
    stream = io.StringIO()  # not a terminal: one plain line now, the next only after 10 s
    console = ConsoleStatus(stream)
    console.on_status(status)
    console.on_status(status)
    console.close()
    assert stream.getvalue() == ("cam0     12 s |   29.5 fps | latency p50 12.3 p99 40.0 ms | PASS 90 FAIL 7 ERROR 1"
                                 " | dropped 2\n")
