"""Run statistics: bounded-memory percentiles, the live status and the end-of-run summary."""

from __future__ import annotations

import collections
import dataclasses
import math
import random
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ard_edge._io import json_safe
from ard_edge.runtime.decision import VERDICTS

# Percentiles are exact up to this many samples, then estimated from a uniform sample of them:
# a line that runs for weeks must not grow a list per frame.
RESERVOIR_SIZE = 50_000


class Reservoir:
    """Samples of one quantity (latency_ms, engine_ms): percentiles from a bounded uniform sample, exact max."""

    def __init__(self, capacity: int = RESERVOIR_SIZE, seed: int = 0):
        self.capacity = capacity
        self.count = 0
        self.max = float("nan")
        self._samples: list[float] = []
        self._random = random.Random(seed)

    def add(self, value: float) -> None:
        self.count += 1
        self.max = value if self.count == 1 else max(self.max, value)
        if len(self._samples) < self.capacity:
            self._samples.append(value)
            return
        slot = self._random.randrange(self.count)  # keep each sample with probability capacity/count
        if slot < self.capacity:
            self._samples[slot] = value

    def percentiles(self, *qs: float) -> list[float]:
        if not self._samples:
            return [float("nan")] * len(qs)
        return [float(v) for v in np.percentile(np.asarray(self._samples), qs)]


class RecentWindow:
    """The last ``window_s`` seconds of one quantity, for the live status; thread-safe."""

    def __init__(self, window_s: float = 2.0, max_samples: int = 10_000):
        self.window_s = window_s
        self._points: collections.deque[tuple[float, float]] = collections.deque(maxlen=max_samples)
        self._lock = threading.Lock()  # the output thread adds while the CLI may read

    def add(self, now_s: float, value: float) -> None:
        with self._lock:
            self._points.append((now_s, value))

    def values(self, now_s: float) -> np.ndarray:
        with self._lock:
            while self._points and self._points[0][0] < now_s - self.window_s:
                self._points.popleft()
            return np.array([v for _, v in self._points], dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class LiveStatus:
    """What sinks get about once a second while the run goes on."""

    camera: str
    elapsed_s: float
    frames_captured: int
    decisions: dict[str, int]
    dropped: int
    fps: float  # decisions per second over the last window
    latency_p50_ms: float
    latency_p99_ms: float
    backlog: int  # frames waiting between stages
    camera_state: str = "streaming"  # or "reconnecting": the camera was lost and no frame has come since
    queues: dict[str, int] = dataclasses.field(default_factory=dict)  # frames waiting, per stage queue
    camera_stats: dict[str, int] = dataclasses.field(default_factory=dict)  # the source's timeouts, reconnects...
    sink_stats: dict[str, int] = dataclasses.field(default_factory=dict)  # every sink's counters, merged


@dataclasses.dataclass
class RunSummary:
    """The end-of-run account; ``frames_captured == sum(decisions.values()) + dropped`` always."""

    frames_captured: int
    decisions: dict[str, int]
    dropped: int
    latency_ms: dict[str, float]  # p50, p90, p99, max: host receive -> decision
    engine_ms_p50: float  # engine time per batch
    throughput_fps: float  # decisions / (last decision - first frame received)
    wall_s: float  # start() -> everything drained and closed
    camera: str = ""
    engine: str = ""
    timeouts: int = 0
    incomplete: int = 0
    reconnects: int = 0
    rejects: int = 0
    overhead_ms: dict[str, float] = dataclasses.field(default_factory=dict)  # latency minus engine time
    batches: int = 0
    mean_batch: float = 0.0
    backpressure_s: float = 0.0  # time a triggered camera was held back by full queues
    # max_frames, duration, stopped, end_of_stream; abnormal: camera_error, stage_crashed, decision_log_failed
    stop_reason: str = ""
    error: str | None = None  # what ended the run abnormally
    run_id: str = ""  # the id every decision of this run carries
    device: dict[str, str | None] = dataclasses.field(default_factory=dict)  # camera vendor, model, serial
    non_finite: int = 0  # frames whose engine output held a NaN or infinity: ERROR decisions
    sink_stats: dict[str, int] = dataclasses.field(default_factory=dict)  # every sink's counters, merged
    sink_notes: list[str] = dataclasses.field(default_factory=list)  # each sink's phrase for lines()
    model_id: str = ""  # the model deciding at the end: engine file name @ its sha256
    model_swaps: int = 0  # engines swapped in while the run went on (decisions name each one's model_id)

    @property
    def lost(self) -> int:
        """Frames neither decided nor counted as dropped: always 0 unless something is broken."""
        return self.frames_captured - self.dropped - sum(self.decisions.values())

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["lost"] = self.lost
        return json_safe(data)

    def write(self, path: str | Path) -> None:
        """Write the summary as JSON, atomically."""
        from ard_edge._io import write_json

        write_json(path, self.to_dict())

    def lines(self) -> list[str]:
        """The summary as a few human-readable lines (the CLI prints them)."""
        d = self.decisions
        lat = self.latency_ms
        device = " ".join(str(v) for v in (self.device.get("vendor"), self.device.get("model")) if v)
        serial = self.device.get("serial")
        return [
            f"run {self.run_id}: camera {self.camera} ({device or 'unknown device'}"
            + (f", serial {serial}" if serial else "") + f"), engine {self.engine}: stopped by {self.stop_reason}"
            + (f" ({self.error})" if self.error else ""),
            f"frames captured {self.frames_captured}: PASS {d.get('PASS', 0)}, FAIL {d.get('FAIL', 0)},"
            f" ERROR {d.get('ERROR', 0)}, dropped {self.dropped} (rejects {self.rejects})"
            + (f"; {self.non_finite} non-finite engine outputs" if self.non_finite else "")
            + (f"; LOST {self.lost}" if self.lost else ""),
            "; ".join([f"camera: timeouts {self.timeouts}, incomplete {self.incomplete}, reconnects {self.reconnects}",
                       *self.sink_notes]),
            f"latency ms: p50 {format_ms(lat.get('p50'))}, p90 {format_ms(lat.get('p90'))}, p99 {format_ms(lat.get('p99'))},"
            f" max {format_ms(lat.get('max'))}; engine per batch p50 {format_ms(self.engine_ms_p50)} ms"
            f" (mean batch {self.mean_batch:.2f})",
            f"throughput {self.throughput_fps:.1f} fps over {self.wall_s:.1f} s",
            *([f"model swapped {self.model_swaps} time(s) without stopping; now {self.model_id}"] if self.model_swaps else []),
        ]


def totals(summaries: Sequence[RunSummary]) -> dict[str, Any]:
    """The cameras of one run added up: the ``total`` section of a several-camera summary."""
    decisions = empty_decisions()
    for summary in summaries:
        for verdict, count in summary.decisions.items():
            decisions[verdict] += count
    return {
        "cameras": len(summaries),
        "frames_captured": sum(s.frames_captured for s in summaries),
        "decisions": decisions,
        "dropped": sum(s.dropped for s in summaries),
        "rejects": sum(s.rejects for s in summaries),
        "lost": sum(s.lost for s in summaries),
        "throughput_fps": sum(s.throughput_fps for s in summaries),  # the cameras run at the same time
        "wall_s": max((s.wall_s for s in summaries), default=0.0),
    }


def total_line(total: dict[str, Any]) -> str:
    """:func:`totals` as the summary's last line."""
    d = total["decisions"]
    return (f"total over {total['cameras']} cameras: frames captured {total['frames_captured']}: PASS {d['PASS']},"
            f" FAIL {d['FAIL']}, ERROR {d['ERROR']}, dropped {total['dropped']} (rejects {total['rejects']})"
            + (f"; LOST {total['lost']}" if total["lost"] else "")
            + f"; throughput {total['throughput_fps']:.1f} fps over {total['wall_s']:.1f} s")


def empty_decisions() -> dict[str, int]:
    return {verdict: 0 for verdict in VERDICTS}


def latency_dict(reservoir: Reservoir) -> dict[str, float]:
    p50, p90, p99 = reservoir.percentiles(50, 90, 99)
    return {"p50": p50, "p90": p90, "p99": p99, "max": reservoir.max}


def format_ms(value: float | None, digits: int = 2) -> str:
    """Milliseconds for a summary, status line or table; "-" when there is no sample (None, NaN)."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"
