"""What the live page shows, kept by the run's output threads and read by the server's thread.

:class:`LiveSink` runs on a pipeline's output thread, so it only stores references (the latest
decision, frame and anomaly map per camera) and bumps counters: O(1), no encoding, no lock it
could wait on. The server reads those references later; CPython's GIL makes each attribute
store and each ``deque``/``dict`` copy atomic, which is all the consistency a status page needs.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ard_edge._io import json_safe
from ard_edge.runtime.decision import FAIL, PASS, VERDICTS
from ard_edge.runtime.live.metrics import LiveMetrics
from ard_edge.runtime.sinks.base import RunInfo, Sink
from ard_edge.runtime.sinks.evidence import evidence_stem
from ard_edge.runtime.summary import empty_decisions

if TYPE_CHECKING:
    from ard_edge.camera.frames import Frame
    from ard_edge.engines.base import InferenceResult
    from ard_edge.runtime.decision import Decision
    from ard_edge.runtime.summary import LiveStatus


@dataclasses.dataclass(frozen=True)
class Latest:
    """The newest decided frame of one camera; ``seq`` counts its decisions, so a viewer sees a change."""

    seq: int
    decision: Decision
    frame: Frame
    result: InferenceResult | None


class CameraView:
    """One camera's part of the board."""

    def __init__(self, run: RunInfo, index: int, evidence_dir: Path | None):
        self.run = run
        self.index = index  # names the camera in evidence URLs: a replay's name holds slashes
        self.evidence_dir = evidence_dir
        self.latest: Latest | None = None
        self.decisions = empty_decisions()
        self.status: LiveStatus | None = None
        self.ended = False

    def summary(self) -> dict[str, Any]:
        """This camera for ``/api/status``."""
        latest, status = self.latest, self.status
        decided = sum(self.decisions.values())
        decision = latest.decision if latest else None
        return {
            "engine": decision.engine if decision else self.run.engine,
            "model_id": decision.model_id if decision else "",
            "state": "ended" if self.ended else (status.camera_state if status else "starting"),
            "seq": latest.seq if latest else 0,
            "frame_id": decision.frame_id if decision else None,
            "verdict": decision.verdict if decision else None,
            "score": decision.score if decision else None,
            "decisions": dict(self.decisions),
            "yield": self.decisions[PASS] / decided if decided else None,
            "frames_captured": status.frames_captured if status else 0,
            "dropped": status.dropped if status else 0,
            "fps": status.fps if status else None,
            "latency_p50_ms": status.latency_p50_ms if status else None,
            "latency_p99_ms": status.latency_p99_ms if status else None,
            "queues": dict(status.queues) if status else {},
            "reconnects": status.camera_stats.get("reconnects", 0) if status else 0,
        }


class LiveBoard:
    """Every camera of the run, the last FAILs and the metrics: one board, however many pipelines feed it.

    Args:
        fails_shown: how many FAIL thumbnails the page keeps.
    """

    def __init__(self, fails_shown: int = 12):
        self.metrics = LiveMetrics(self)  # the Prometheus side, fed from the same calls
        self.cameras: dict[str, CameraView] = {}
        self.views: list[CameraView] = []  # by index, for evidence URLs
        self.run_id = ""
        # Twice what is shown: the evidence saver may skip an image, and those are left out.
        self._fails: collections.deque[Decision] = collections.deque(maxlen=2 * fails_shown)
        self._fails_shown = fails_shown
        self._lock = threading.Lock()  # registration only (on_start/close), never per decision

    def sink(self, evidence_dir: Path | None = None) -> LiveSink:
        """A sink for one pipeline (give each pipeline its own); ``evidence_dir`` is its camera's
        output folder: FAILs whose evidence image is there are shown and linked."""
        return LiveSink(self, evidence_dir)

    def started(self, run: RunInfo, evidence_dir: Path | None) -> CameraView:
        with self._lock:
            view = self.cameras[run.camera] = CameraView(run, len(self.views), evidence_dir)
            self.views.append(view)
        self.metrics.add_camera(view)
        return view

    def decided(self, view: CameraView, decision: Decision, frame: Frame, result: InferenceResult | None) -> None:
        view.decisions[decision.verdict] += 1
        view.latest = Latest(sum(view.decisions.values()), decision, frame, result)
        self.run_id = decision.run_id
        if decision.verdict == FAIL:
            self._fails.append(decision)
        self.metrics.decided(decision)

    def readiness(self) -> list[str]:
        """Why the run is not ready (empty when it is): no engine loaded yet, a camera lost, the run over."""
        views = list(self.cameras.values())
        if not views:
            return ["starting: no engine loaded and no camera streaming yet"]
        reasons = []
        for name, view in sorted(self.cameras.items()):
            if view.ended:
                reasons.append(f"{name}: the run has ended")
            elif view.status is None:
                reasons.append(f"{name}: starting: no status from its pipeline yet")
            elif view.status.camera_state != "streaming":
                reasons.append(f"{name}: camera {view.status.camera_state}")
        return reasons

    def snapshot(self) -> dict[str, Any]:
        """What ``/api/status`` returns and the page shows; strict JSON (no NaN)."""
        reasons = self.readiness()
        cameras = {name: view.summary() for name, view in sorted(self.cameras.items())}
        return json_safe({"run_id": self.run_id, "ready": not reasons, "reasons": reasons, "time": time.time(),
                          "verdicts": list(VERDICTS), "cameras": cameras, "fails": self._saved_fails()})

    def _saved_fails(self) -> list[dict[str, Any]]:
        shown = []
        for decision in reversed(list(self._fails)):
            view, stem = self.cameras.get(decision.camera), evidence_stem(decision)
            if view is None or view.evidence_dir is None:
                continue
            if not (view.evidence_dir / "fail" / f"{stem}_heatmap.png").is_file():
                continue  # not written yet, or skipped by the evidence saver
            url = f"/evidence/{view.index}/fail/{stem}"
            shown.append({"camera": decision.camera, "frame_id": decision.frame_id, "score": decision.score,
                          "received": decision.received, "image": f"{url}.png", "heatmap": f"{url}_heatmap.png"})
            if len(shown) == self._fails_shown:
                break
        return shown


class LiveSink(Sink):
    """Feeds one pipeline's decisions and status into a :class:`LiveBoard`."""

    def __init__(self, board: LiveBoard, evidence_dir: Path | None = None):
        self.board = board
        self.evidence_dir = evidence_dir
        self._view: CameraView | None = None

    def on_start(self, run: RunInfo) -> None:
        self._view = self.board.started(run, self.evidence_dir)

    def on_decision(self, decision: Decision, frame: Frame, result: InferenceResult | None) -> None:
        if self._view is not None:
            self.board.decided(self._view, decision, frame, result)

    def on_status(self, status: LiveStatus) -> None:
        if self._view is not None:
            self._view.status = status

    def close(self) -> None:
        if self._view is not None:
            self._view.ended = True
