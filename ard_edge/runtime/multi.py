"""Several cameras in one process: one :class:`Pipeline` per camera, one inference stage per engine file.

Each camera keeps its own capture, preprocess and output threads, queues, counters, sinks and
summary, so one camera that stalls, reconnects or fails only ends its own stream. Cameras whose
engine is the same file share one opened engine and one :class:`InferenceStage`, which batches
their frames together. Sinks given as ``shared`` (an MQTT client, a web page) see every camera's
decisions through one wrapper that serializes the calls and closes the sink once, at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from ard_edge.camera.frames import FrameSource
from ard_edge.engines.base import Engine
from ard_edge.engines.triton import is_triton_url
from ard_edge.runtime.config import RuntimeConfig
from ard_edge.runtime.decision import DecisionContext, new_run_id
from ard_edge.runtime.inference import InferenceStage
from ard_edge.runtime.model_swap import EngineWatcher
from ard_edge.runtime.pipeline import Pipeline
from ard_edge.runtime.sinks.base import Sink
from ard_edge.runtime.summary import LiveStatus, RunSummary

log = logging.getLogger(__name__)


@dataclasses.dataclass
class CameraJob:
    """One camera of a run: where its frames come from, which engine file decides them, its own sinks.

    ``sinks`` makes them, called once every engine and camera is open: a bad one leaves no file behind.
    """

    source: FrameSource
    engine_path: Path
    sinks: Callable[[], Sequence[Sink]] = list


class SharedSink(Sink):
    """One sink fed by every camera's output thread: calls are serialized, ``close`` waits for :meth:`release`."""

    def __init__(self, sink: Sink):
        self.sink = sink
        self.critical = sink.critical
        self._lock = threading.Lock()

    def on_start(self, run) -> None:
        with self._lock:
            self.sink.on_start(run)

    def on_decision(self, decision, frame, result) -> None:
        with self._lock:
            self.sink.on_decision(decision, frame, result)

    def on_status(self, status) -> None:
        with self._lock:
            self.sink.on_status(status)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return self.sink.stats()

    def summary_note(self) -> str | None:
        with self._lock:
            return self.sink.summary_note()

    def close(self) -> None:
        pass  # one camera ending must not close what the others still use

    def release(self) -> None:
        self.sink.close()


class MultiRun:
    """Stream several cameras at once; see the module docstring.

    Args:
        jobs: the cameras, in order (aliases must differ).
        open_engine: opens an engine file (each distinct file once).
        settings: the ``runtime:`` section, for every camera.
        shared: sinks that get every camera's events (closed once, after the last camera).
        max_frames: per camera.
        duration_s: for the run.
        watch_s: poll period of the engine-file watchers (model swap); None watches nothing.
        context: line and station names for every decision.
    """

    def __init__(self, jobs: Sequence[CameraJob], open_engine: Callable[[Path], Engine],
                 settings: RuntimeConfig | None = None, shared: Sequence[Sink] = (),
                 max_frames: int | None = None, duration_s: float | None = None, watch_s: float | None = 0.5,
                 context: DecisionContext | None = None):
        self.settings = settings or RuntimeConfig()
        self.run_id = new_run_id()
        self._exit = contextlib.ExitStack()
        self._shared = [SharedSink(sink) for sink in shared]
        self.stages: dict[Path, InferenceStage] = {}
        self.watchers: list[EngineWatcher] = []
        self.pipelines: list[Pipeline] = []
        try:
            for sink in self._shared:
                self._exit.callback(sink.release)
            stages = [self._stage_for(job.engine_path, open_engine, watch_s) for job in jobs]
            for job in jobs:  # engines, then cameras, then outputs: what fails first leaves nothing behind
                self._exit.enter_context(job.source)
            for job, stage in zip(jobs, stages):
                self.pipelines.append(Pipeline(job.source, stage.engine, self.settings, [*job.sinks(), *self._shared],
                                               max_frames=max_frames, duration_s=duration_s, run_id=self.run_id,
                                               inference=stage, context=context))
        except BaseException:
            self._exit.close()
            raise

    def _stage_for(self, path: Path, open_engine: Callable[[Path], Engine], watch_s: float | None) -> InferenceStage:
        remote = is_triton_url(path)  # served: its versions change on the server, not in a file here
        key = path if remote else path.resolve()
        if key not in self.stages:
            engine = self._exit.enter_context(open_engine(path))
            stage = InferenceStage(engine, self.settings)
            self._exit.callback(stage.close)  # after the watcher (below) stops offering
            if watch_s is not None and not remote:
                self.watchers.append(self._exit.enter_context(EngineWatcher(path, stage, open_engine, poll_s=watch_s)))
            self.stages[key] = stage
        return self.stages[key]

    def start(self) -> MultiRun:
        """Start every camera; when one cannot start, stop the ones already started and raise its error."""
        started: list[Pipeline] = []
        try:
            for pipeline in self.pipelines:
                pipeline.start()  # one that fails closes its own queue to the stage
                started.append(pipeline)
        except BaseException:
            self.stop()
            for pipeline in self.pipelines[len(started) + 1:]:
                pipeline.infer_q.close()  # never started: the shared stage must not wait for it
            for pipeline in started:
                pipeline.join()
            self._exit.close()
            raise
        return self

    def stop(self) -> None:
        for pipeline in self.pipelines:
            pipeline.stop()

    def reload(self) -> None:
        """Look for a new version of every engine now (SIGHUP)."""
        for watcher in self.watchers:
            watcher.request()

    def join(self) -> list[RunSummary]:
        """Wait for every camera to drain; return their summaries, in the jobs' order."""
        try:
            summaries = [pipeline.join() for pipeline in self.pipelines]
        finally:
            self._exit.close()
        return summaries

    def status(self) -> list[LiveStatus]:
        return [pipeline.status() for pipeline in self.pipelines]
