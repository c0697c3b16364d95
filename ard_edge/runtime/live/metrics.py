"""``/metrics``: the run in Prometheus text format, from a registry of its own (not the process-global one).

Per-decision numbers (decisions by verdict, latency histograms) are prometheus-client
counters and histograms updated on the output thread: a dict lookup and a short uncontended
lock each. Everything the pipeline reports in its live status (captured, dropped, queues,
reconnects, sink counters) is read at scrape time by :class:`_StatusCollector`, so it costs the
line nothing between scrapes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ard_edge.runtime.decision import VERDICTS

if TYPE_CHECKING:
    from ard_edge.runtime.decision import Decision
    from ard_edge.runtime.live.board import CameraView, LiveBoard

# Seconds; a CPU line sits at 10-500 ms, a GPU line at 1-20 ms.
_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A result sink (MQTT, OPC UA, webhook) reports <sink>_delivered, <sink>_queued and <sink>_dropped.
_SINK_STAT = re.compile(r"^(?P<sink>[a-z0-9]+)_(?P<what>delivered|queued|dropped)$")


class LiveMetrics:
    """The Prometheus registry of one run; :meth:`exposition` renders it."""

    def __init__(self, board: LiveBoard):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self._decisions = Counter("ard_edge_decisions", "Decisions by camera and verdict.", ["camera", "verdict"],
                                  registry=self.registry)
        self._latency = Histogram("ard_edge_capture_to_decision_seconds", "Host receive to decision, per frame.",
                                  ["camera"], buckets=_LATENCY_BUCKETS_S, registry=self.registry)
        self._engine = Histogram("ard_edge_engine_seconds", "Engine time of the batch each decided frame ran in.",
                                 ["camera"], buckets=_LATENCY_BUCKETS_S, registry=self.registry)
        self.frames_encoded = Counter("ard_edge_live_frames_encoded", "Live-page frames encoded (only for viewers).",
                                      registry=self.registry)
        self._children: dict[str, tuple[dict, object, object]] = {}
        self.registry.register(_StatusCollector(board))

    def add_camera(self, view: CameraView) -> None:
        """Create the camera's series up front, so a verdict it never gave still reads 0."""
        camera = view.run.camera
        self._children[camera] = ({v: self._decisions.labels(camera, v) for v in VERDICTS},
                                  self._latency.labels(camera), self._engine.labels(camera))

    def decided(self, decision: Decision) -> None:
        children = self._children.get(decision.camera)
        if children is None:
            return  # a camera that never started has no series; the board still counts it
        verdicts, latency, engine = children
        verdicts[decision.verdict].inc()
        latency.observe(decision.latency_ms / 1000.0)
        if decision.engine_ms is not None:
            engine.observe(decision.engine_ms / 1000.0)

    def exposition(self) -> tuple[bytes, str]:
        """(body, content type) of ``/metrics``."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _StatusCollector:
    """The pipelines' live status, read when Prometheus scrapes."""

    def __init__(self, board: LiveBoard):
        self.board = board

    def describe(self) -> list:
        return []  # the families depend on the cameras and sinks present at scrape time

    def collect(self) -> Iterator:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        captured = CounterMetricFamily("ard_edge_frames_captured", "Frames taken from the camera.", labels=["camera"])
        dropped = CounterMetricFamily("ard_edge_frames_dropped", "Frames dropped because inference was behind.",
                                      labels=["camera"])
        reconnects = CounterMetricFamily("ard_edge_camera_reconnects", "Times the camera was reopened after a loss.",
                                         labels=["camera"])
        errors = CounterMetricFamily("ard_edge_camera_errors", "Camera fetch timeouts and incomplete frames.",
                                     labels=["camera", "kind"])
        streaming = GaugeMetricFamily("ard_edge_camera_streaming", "1 while frames flow; 0 while reconnecting and after the run.",
                                      labels=["camera"])
        queues = GaugeMetricFamily("ard_edge_queue_depth", "Frames waiting in each stage queue.",
                                   labels=["camera", "queue"])
        sink = {what: (CounterMetricFamily if what != "queued" else GaugeMetricFamily)(
            f"ard_edge_sink_{what}", f"Result-sink messages {what}.", labels=["camera", "sink"])
            for what in ("delivered", "queued", "dropped")}
        sink_stats = GaugeMetricFamily("ard_edge_sink_stat", "Every sink counter as the run summary names it.",
                                       labels=["camera", "stat"])
        model = InfoMetricFamily("ard_edge_model", "The engine and model each camera runs.",
                                 labels=["camera", "engine", "model_id"])
        for camera, view in sorted(self.board.cameras.items()):
            latest = view.latest
            engine = latest.decision.engine if latest else view.run.engine
            model.add_metric([camera, engine, latest.decision.model_id if latest else ""], {})
            status = view.status
            if status is None:
                continue
            captured.add_metric([camera], status.frames_captured)
            dropped.add_metric([camera], status.dropped)
            reconnects.add_metric([camera], status.camera_stats.get("reconnects", 0))
            for kind in ("timeouts", "incomplete"):
                errors.add_metric([camera, kind], status.camera_stats.get(kind, 0))
            streaming.add_metric([camera], float(status.camera_state == "streaming" and not view.ended))
            for name, depth in status.queues.items():
                queues.add_metric([camera, name], depth)
            for key, value in sorted(status.sink_stats.items()):
                sink_stats.add_metric([camera, key], value)
                if match := _SINK_STAT.match(key):
                    sink[match["what"]].add_metric([camera, match["sink"]], value)
        yield from (captured, dropped, reconnects, errors, streaming, queues, *sink.values(), sink_stats, model)
