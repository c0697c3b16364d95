"""What a run counts: frames in, drops, verdicts, batches, latencies; the live status and the summary."""

from __future__ import annotations

import threading
import time

import numpy as np

from ard_edge.runtime.decision import Decision
from ard_edge.runtime.summary import LiveStatus, RecentWindow, Reservoir, RunSummary, empty_decisions, latency_dict


class RunCounters:
    """The counters of one pipeline run.

    Each counter is written by one stage thread (capture, inference or output), except ``dropped``,
    which two queues write, under a lock; :meth:`status` may be read from any thread.
    """

    def __init__(self):
        self.captured = 0
        self.dropped = 0
        self.decisions = empty_decisions()
        self.rejects = 0
        self.non_finite = 0  # frames whose engine output held a NaN or an infinity (each an ERROR)
        self.batches = 0
        self.batched_frames = 0
        self.latency = Reservoir()
        self.overhead = Reservoir()  # latency minus the engine time of the frame's batch
        self.engine_ms = Reservoir()
        self.recent_latency = RecentWindow()
        self.recent_decisions = RecentWindow()
        self.first_received_ns: int | None = None
        self.last_decision_ns: int | None = None
        self.started_s = time.monotonic()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the clocks of ``elapsed_s`` and ``wall_s``."""
        self.started_s = time.monotonic()

    def captured_frame(self, received_ns: int) -> None:
        if self.first_received_ns is None:
            self.first_received_ns = received_ns
        self.captured += 1

    def dropped_frame(self) -> None:
        with self._lock:
            self.dropped += 1

    def inferred_batch(self, size: int, engine_ms: float) -> None:
        self.engine_ms.add(engine_ms)
        self.batches += 1
        self.batched_frames += size

    def decided(self, decision: Decision, decided_ns: int) -> None:
        self.decisions[decision.verdict] += 1
        self.rejects += decision.reject
        self.latency.add(decision.latency_ms)
        if decision.engine_ms is not None:
            self.overhead.add(decision.latency_ms - decision.engine_ms)
        now_s = decided_ns / 1e9
        self.recent_latency.add(now_s, decision.latency_ms)
        self.recent_decisions.add(now_s, 1.0)
        self.last_decision_ns = decided_ns

    def status(self, camera: str, backlog: int) -> LiveStatus:
        now_s = time.monotonic()
        latencies = self.recent_latency.values(now_s)
        decided = self.recent_decisions.values(now_s)
        window_s = min(self.recent_decisions.window_s, max(now_s - self.started_s, 1e-3))
        p50, p99 = np.percentile(latencies, (50, 99)) if latencies.size else (float("nan"), float("nan"))
        return LiveStatus(
            camera=camera,
            elapsed_s=now_s - self.started_s,
            frames_captured=self.captured,
            decisions=dict(self.decisions),
            dropped=self.dropped,
            fps=decided.size / window_s,
            latency_p50_ms=float(p50),
            latency_p99_ms=float(p99),
            backlog=backlog,
        )

    def summary(self, camera: str, engine: str, camera_stats: dict[str, int], **run) -> RunSummary:
        """The end-of-run account; ``run`` holds what the pipeline knows beyond these counters
        (sink_stats, sink_notes, backpressure_s, stop_reason, error, run_id, device)."""
        decided = sum(self.decisions.values())
        span_s = 0.0
        if self.first_received_ns is not None and self.last_decision_ns is not None:
            span_s = (self.last_decision_ns - self.first_received_ns) / 1e9
        overhead = self.overhead.percentiles(50, 99)
        return RunSummary(
            frames_captured=self.captured,
            decisions=dict(self.decisions),
            dropped=self.dropped,
            latency_ms=latency_dict(self.latency),
            engine_ms_p50=self.engine_ms.percentiles(50)[0],
            throughput_fps=decided / span_s if span_s > 0 else 0.0,
            wall_s=time.monotonic() - self.started_s,
            camera=camera,
            engine=engine,
            timeouts=camera_stats.get("timeouts", 0),
            incomplete=camera_stats.get("incomplete", 0),
            reconnects=camera_stats.get("reconnects", 0),
            rejects=self.rejects,
            overhead_ms={"p50": overhead[0], "p99": overhead[1], "max": self.overhead.max},
            non_finite=self.non_finite,
            batches=self.batches,
            mean_batch=self.batched_frames / self.batches if self.batches else 0.0,
            **run,
        )
