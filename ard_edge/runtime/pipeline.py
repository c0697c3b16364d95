"""The streaming pipeline of one camera: capture -> preprocess -> inference -> outputs, a thread per stage.

The inference stage (:class:`~ard_edge.runtime.inference.InferenceStage`) is the one stage a
camera may share: cameras on one engine file feed one stage, which batches their frames
together (see :mod:`ard_edge.runtime.multi`). A pipeline built without one makes its own.

numpy, OpenCV and ONNX Runtime release the GIL, so the stages overlap: while the engine runs
batch k, the next frames are fetched and resized. Bounded :class:`StageQueue` s sit between
the stages. A free-running camera that outpaces inference loses its *oldest* waiting frames
(counted, logged, never turned into decisions); a triggered camera loses nothing: full queues
hold the capture thread back (backpressure) and a warning says so.

Every frame that enters the pipeline leaves it as exactly one decision (PASS, FAIL or ERROR)
or is counted as dropped, so ``frames_captured == decisions + dropped`` at the end of a run,
including runs stopped by :meth:`Pipeline.stop` or ended by a camera fault. The pipeline keeps
a ledger of the frames in flight: when a stage thread dies, the frames it held become ERROR
decisions and the run stops. The fail-safe rules:

- a NaN or infinite score, normalized score or anomaly map (or a non-finite engine threshold)
  is an ERROR decision, never a PASS;
- when the decision log cannot be written (a critical sink, see
  :class:`~ard_edge.runtime.sinks.base.Sink`), acquisition stops and the frames in flight become
  ERROR decisions that are counted, not written; the summary says how many.

The capture, preprocess and output loops live here, together, because they share the queues; what they count
(:class:`~ard_edge.runtime.counters.RunCounters`), the verdict rule
(:func:`~ard_edge.runtime.decision.decide`) and the sink fan-out
(:class:`~ard_edge.runtime.sinks.base.SinkFanout`) live beside them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Sequence

import numpy as np

from ard_edge.camera.frames import Frame, FrameSource
from ard_edge.engines.base import Engine
from ard_edge.errors import CameraDisconnected, CameraError, CameraTimeout, ConfigError, EndOfStream
from ard_edge.runtime._queue import CLOSED, EMPTY, StageQueue
from ard_edge.runtime._threads import SwitchInterval, Throttled
from ard_edge.runtime.config import RuntimeConfig
from ard_edge.runtime.counters import RunCounters
from ard_edge.runtime.decision import DecisionContext, as_error, decide, new_run_id, threshold_error
from ard_edge.runtime.inference import InferenceStage, Item, Outcome
from ard_edge.runtime.preprocess import Roi, crop_roi, prepare_frame
from ard_edge.runtime.sinks.base import RunInfo, Sink, SinkFanout
from ard_edge.runtime.summary import LiveStatus, RunSummary

log = logging.getLogger(__name__)

_JOIN_SLICE_S = 0.2  # join() waits in slices so the main thread still runs signal handlers
_ROOM_WAIT_S = 0.1  # bound on waiting for the inference queue, so a stalled stage cannot wedge us


class Pipeline:
    """Stream ``source`` through ``engine`` into ``sinks``.

    Use it as a context manager, or call :meth:`start`, then :meth:`join` (which returns the
    :class:`RunSummary`); :meth:`stop` from any thread ends acquisition and lets the frames in
    flight drain to decisions. The pipeline closes its sinks when the run ends, and closes the
    source only if it opened it.

    Args:
        source: a camera or replay (see :func:`ard_edge.camera.open_source`).
        engine: an opened engine.
        settings: the ``runtime:`` section; defaults when None.
        sinks: where decisions go; none is fine (the summary still counts them).
        max_frames: stop after this many captured frames.
        duration_s: stop after this many seconds of streaming.
        roi: ``[x, y, w, h]`` crop applied before resizing; None takes the source's own
            :attr:`~ard_edge.camera.FrameSource.roi`.
        run_id: recorded in every decision and the summary; a new one (UTC start time + random) when None.
        inference: the inference stage this camera shares with others (see
            :class:`~ard_edge.runtime.inference.InferenceStage`); a stage of its own over ``engine`` when None.
        context: line and station names for every decision (ard-edge.yaml).
    """

    def __init__(
        self,
        source: FrameSource,
        engine: Engine,
        settings: RuntimeConfig | None = None,
        sinks: Sequence[Sink] | None = None,
        max_frames: int | None = None,
        duration_s: float | None = None,
        roi: Roi | None = None,
        run_id: str | None = None,
        inference: InferenceStage | None = None,
        context: DecisionContext | None = None,
    ):
        if max_frames is not None and max_frames < 1:
            raise ConfigError(f"max_frames must be >= 1, got {max_frames}")
        if duration_s is not None and not duration_s > 0:
            raise ConfigError(f"duration_s must be positive, got {duration_s}")
        self.source = source
        self.settings = settings or RuntimeConfig()
        self._owns_stage = inference is None
        self._stage = inference or InferenceStage(engine, self.settings)
        self._sinks = SinkFanout(sinks or [])
        self.max_frames = max_frames
        self.duration_s = duration_s
        self.roi = tuple(roi) if roi is not None else source.roi
        self.batch_size = self._stage.batch_size
        self.triggered = source.trigger_mode != "free_run"
        self.drops_frames = source.drops_when_behind
        capacity = max(self.settings.queue_size, self.batch_size)
        self._capture_q = StageQueue(capacity, self.drops_frames, "capture")
        self._infer_q = StageQueue(capacity, self.drops_frames, "inference")
        # Decisions are never dropped: inference waits for the outputs if they fall behind.
        self._output_q = StageQueue(4 * capacity, False, "output")
        self._stage.add_lane(self)
        self._stop = threading.Event()
        self._done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._exit = contextlib.ExitStack()
        self._first_frame: Frame | None = None
        self._summary: RunSummary | None = None
        self._started = False
        self._counters = RunCounters()
        self._wall_offset_ns = 0
        self._stop_reason = ""
        self._fault: str | None = None  # stop reason that overrides the capture loop's: stage_crashed, ...
        self._error: str | None = None
        self.run_id = run_id or new_run_id()
        self._context = context or DecisionContext()
        self._device: dict[str, str | None] = {}
        # Frames admitted and neither decided nor dropped, oldest first, keyed by id(frame) (each
        # frame object lives here until it leaves, so its id stays unique).
        self._in_flight: dict[int, Frame] = {}
        self._record_failure: str | None = None  # why the decision log stopped, once it has
        self._threshold_error = threshold_error(self.engine.threshold)
        self._non_finite_warning = Throttled(f"{source.name}: non-finite engine output (NaN/inf): ERROR decisions")
        self._disconnected = False
        self._drop_warning = Throttled(f"{source.name}: inference is behind the camera: dropped the oldest frames")
        self._backpressure_warning = Throttled(
            f"{source.name}: triggered frames arrive faster than inference: holding the camera back"
            " (no frame is dropped here; the camera's own buffers may overflow; add num_buffers or a faster engine)"
        )

    # -- lifecycle

    def start(self) -> Pipeline:
        """Open the source if needed, check it against the engine, start the stage threads.

        Raises:
            EngineError: the engine's channel count does not match the camera's frames.
            CameraError: no frame within ``runtime.startup_timeout_s`` (free-running sources).
            ConfigError: the ROI does not fit the frames.
        """
        if self._started:
            raise RuntimeError("a Pipeline runs once; make a new one")
        self._started = True
        try:
            self._prepare()
        except BaseException:
            self._exit.close()
            self._infer_q.close()  # a shared inference stage must not wait for this camera
            raise
        stages = [("capture", self._capture_loop), ("preprocess", self._preprocess_loop), ("output", self._output_loop)]
        for name, target in stages:
            thread = threading.Thread(target=self._guarded, args=(name, target), name=f"ard-{name}", daemon=True)
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()
        self._stage.start()
        log.info("%s -> %s: streaming (batch %d, max wait %.1f ms, %s)", self.source.name, self.engine.name,
                 self.batch_size, self.settings.max_wait_ms,
                 "drop oldest when behind" if self.drops_frames else "backpressure, never drop")
        return self

    def stop(self) -> None:
        """End acquisition; frames already captured still get their decisions. Safe from any thread."""
        self._stop.set()

    def join(self, timeout_s: float | None = None) -> RunSummary | None:
        """Wait for the run to drain; return its summary, or None if ``timeout_s`` passed first."""
        if not self._started:
            raise RuntimeError("join() before start()")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._done.is_set():
            wait_s = _JOIN_SLICE_S if deadline is None else min(_JOIN_SLICE_S, deadline - time.monotonic())
            if wait_s <= 0:
                return None
            self._done.wait(wait_s)
        if self._summary is None:
            for thread in self._threads:
                thread.join()
            if self._owns_stage:
                self._stage.close()
            self._decide_leftovers()
            self._exit.close()  # sinks (evidence drains here), then the source if we opened it
            self._summary = self._build_summary()
            log.info("run ended (%s): %s", self._summary.stop_reason, self._summary.lines()[1])
        return self._summary

    @property
    def engine(self) -> Engine:
        """The engine this camera's frames run on now (a model swap replaces it)."""
        return self._stage.engine

    @property
    def infer_q(self) -> StageQueue:
        return self._infer_q

    @property
    def output_q(self) -> StageQueue:
        return self._output_q

    @property
    def running(self) -> bool:
        return self._started and not self._done.is_set()

    def status(self) -> LiveStatus:
        """A snapshot of the live counters, safe to call from any thread."""
        queues = {queue.name: len(queue) for queue in (self._capture_q, self._infer_q, self._output_q)}
        status = self._counters.status(self.source.name, sum(queues.values()))
        return dataclasses.replace(status, camera_state="reconnecting" if self._disconnected else "streaming",
                                   queues=queues, camera_stats=dict(self.source.stats), sink_stats=self._sinks.stats())

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
        self.join()

    # -- start-up

    def _prepare(self) -> None:
        self._exit.callback(self._sinks.close)
        if not self.source.is_open:
            self.source.open()
            self._exit.callback(self.source.close)
        self._match_channels()
        if SwitchInterval.acquire(self.settings.gil_switch_interval_ms):
            self._exit.callback(SwitchInterval.release)
        # Warm up before the first frame is taken, so its latency does not carry first-call costs.
        self._stage.warm_up()
        self._wall_offset_ns = time.time_ns() - time.monotonic_ns()
        self._device = self.source.device_info
        if self._threshold_error:
            log.error("%s: every frame becomes an ERROR decision", self._threshold_error)
        # Outputs first (an OPC UA server or a broker connection takes a while): the first frame
        # must not wait for them, or its latency would carry their start-up.
        info = RunInfo(self.source.name, self.engine.name, self.engine.threshold, self.engine.input_spec,
                       self.roi, self.settings)
        self._sinks.on_start(info)
        self._counters.start()
        if not self.triggered:  # a triggered camera may wait minutes for its first part: don't block on it
            self._first_frame = self._probe_first_frame()

    def _match_channels(self) -> None:
        """Give the engine frames with its channel count: switch the source's pixel format when it
        offers a matching one, refuse to start when it does not."""
        spec, source = self.engine.input_spec, self.source
        if source.channels is None or source.channels == spec.channels:
            return  # unknown until the first frame, which _probe_first_frame checks
        current = source.pixel_format
        chosen = source.select_channels(spec.channels)
        if chosen is None:
            spec.check_channels(source.channels, current)
        log.warning("%s: the engine takes %d-channel frames: switched the pixel format from %s to %s",
                    source.name, spec.channels, current, chosen)

    def _probe_first_frame(self) -> Frame | None:
        """Fetch one frame to check channels and ROI before streaming; it then enters the pipeline."""
        deadline = time.monotonic() + self.settings.startup_timeout_s
        while not self._stop.is_set():
            try:
                frame = self.source.fetch(timeout_s=max(0.05, min(1.0, deadline - time.monotonic())))
                break
            except (CameraTimeout, CameraDisconnected) as exc:
                if time.monotonic() >= deadline:
                    raise CameraError(f"{self.source.name}: no frame within {self.settings.startup_timeout_s:g} s"
                                      f" of starting ({exc})") from exc
            except EndOfStream:
                return None
        else:
            return None
        if frame.error is not None:
            return frame  # no image to check: it becomes an ERROR decision like any unreadable frame
        if frame.image.ndim == 3:
            self.engine.input_spec.check_channels(frame.channels, frame.pixel_format)
        try:
            crop_roi(frame.image, self.roi)
        except Exception as exc:
            key = f"cameras.{self.source.name}.roi" if self.roi == self.source.roi else "roi"
            raise ConfigError(f"{key}: {exc}") from exc
        return frame

    # -- stages

    def _guarded(self, name: str, target) -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - logged with its traceback; its frames are in the ledger
            log.exception("the %s stage crashed: its frames become ERROR decisions and the run stops", name)
            self._fault = self._fault or "stage_crashed"
            self._error = self._error or f"the {name} stage crashed ({type(exc).__name__}: {exc})"
            self._stop.set()
            inbox = {"preprocess": self._capture_q, "output": self._output_q}.get(name)
            if inbox is not None:  # let the stages upstream finish instead of waiting on a queue nobody empties
                while inbox.get() is not CLOSED:
                    pass
        finally:
            if name == "output":
                self._done.set()

    def _capture_loop(self) -> None:
        reason = "stopped"
        try:
            if self._first_frame is not None:
                self._admit(self._first_frame)
                self._first_frame = None
            while True:
                limit = self._limit_reached()
                if limit:
                    reason = limit
                    break
                try:
                    frame = self.source.fetch()  # the source's own timeout (camera: timeout_ms)
                except CameraTimeout:
                    continue  # counted by the camera; a triggered line is simply idle
                except CameraDisconnected as exc:
                    self._on_disconnected(exc)
                    continue  # the camera layer reopens the device on later fetches, with backoff
                except EndOfStream:
                    reason = "end_of_stream"
                    break
                except Exception as exc:  # noqa: BLE001 - the source is unusable; drain what we have
                    reason, self._error = "camera_error", self._describe_failure(exc)
                    log.error("%s: acquisition failed, ending the run after the frames in flight: %s",
                              self.source.name, self._error)
                    break
                self._admit(frame)
        finally:
            self._stop_reason = reason
            self._capture_q.close()

    def _describe_failure(self, exc: Exception) -> str:
        message = str(exc) or type(exc).__name__
        if not self.source.is_open:  # closed by another thread: its internals fail in odd ways
            return f"the source was closed while streaming ({message})"
        return message

    def _limit_reached(self) -> str | None:
        if self._stop.is_set():
            return "stopped"
        if self.max_frames is not None and self._counters.captured >= self.max_frames:
            return "max_frames"
        if self.duration_s is not None and time.monotonic() - self._counters.started_s >= self.duration_s:
            return "duration"
        return None

    def _admit(self, frame: Frame) -> None:
        if self._disconnected:
            self._disconnected = False
            log.warning("%s: frames are flowing again", self.source.name)
        self._counters.captured_frame(frame.received_ns)
        self._in_flight[id(frame)] = frame
        self._put(self._capture_q, frame)

    def _put(self, queue: StageQueue, item) -> None:
        if self.triggered and queue.full():
            self._backpressure_warning.hit(f"; held back {queue.blocked_s:.1f} s so far at the {queue.name} queue")
        evicted = queue.put(item)
        if evicted is not None:
            frame = evicted.frame if isinstance(evicted, Item) else evicted
            self._in_flight.pop(id(frame), None)
            self._counters.dropped_frame()
            if self.settings.log_frames:
                log.debug("%s: dropped frame %d", frame.camera, frame.frame_id)
            self._drop_warning.hit()

    def _on_disconnected(self, exc: Exception) -> None:
        if not self._disconnected:
            self._disconnected = True
            log.warning("%s; frames already captured still get their decisions", exc)

    def _preprocess_loop(self) -> None:
        spec = self.engine.input_spec
        try:
            while True:
                if self.drops_frames:
                    # Resize only what inference can take: when it is behind, the camera's
                    # surplus is dropped raw at the capture queue instead of after a resize.
                    self._infer_q.wait_for_room(_ROOM_WAIT_S)
                if (frame := self._capture_q.get()) is CLOSED:
                    break
                item = Item(frame, error=frame.error)
                if item.error is None:
                    try:
                        item.tensor = prepare_frame(frame, spec, self.roi)
                    except Exception as exc:  # noqa: BLE001 - a bad frame becomes an ERROR decision, not a crash
                        item.error = str(exc) or type(exc).__name__
                item.ready_s = time.monotonic()
                self._put(self._infer_q, item)
        finally:
            self._infer_q.close()

    # -- what the inference stage reports (see inference.Lane)

    def on_batch(self, size: int, engine_ms: float) -> None:
        self._counters.inferred_batch(size, engine_ms)

    def on_non_finite(self) -> None:
        self._counters.non_finite += 1
        self._non_finite_warning.hit()

    def on_stage_crashed(self, error: str) -> None:
        self._fault = self._fault or "stage_crashed"
        self._error = self._error or error
        self._stop.set()

    def _output_loop(self) -> None:
        interval_s = self.settings.status_interval_s
        next_status_s = time.monotonic()  # the first status at once: until it comes, nothing says "streaming"
        while True:
            outcome = self._output_q.get(timeout_s=max(0.0, next_status_s - time.monotonic()))
            if outcome is CLOSED:
                break
            if outcome is not EMPTY:
                self._decide(outcome)
            now_s = time.monotonic()
            if now_s >= next_status_s:
                self._publish_status()
                next_status_s = now_s + interval_s
        self._publish_status()

    def _decide(self, outcome: Outcome) -> None:
        frame = outcome.item.frame
        decided_ns = time.monotonic_ns()
        decision = decide(frame, outcome.result, outcome.item.error or outcome.error, outcome.engine or self.engine.name,
                          outcome.engine_ms, decided_ns, self._wall_offset_ns, self.settings.error_is_reject,
                          run_id=self.run_id, device=self._device, context=self._context)
        decision = dataclasses.replace(decision, model_id=outcome.model_id or self._stage.model_id)
        if self._record_failure is not None:
            decision = as_error(decision, f"not recorded: {self._record_failure}", self.settings.error_is_reject)
        failure = self._sinks.on_decision(decision, frame, None if decision.error else outcome.result)
        if failure is not None:  # this decision has no record either: the part is not trusted
            self._on_record_failed(failure)
            decision = as_error(decision, f"not recorded: {failure}", self.settings.error_is_reject)
            self._sinks.on_decision(decision, frame, None)
        self._counters.decided(decision, decided_ns)
        self._in_flight.pop(id(frame), None)
        if self.settings.log_frames:
            log.debug("%s #%d: %s score=%s latency=%.2f ms", frame.camera, frame.frame_id, decision.verdict,
                      decision.score, decision.latency_ms)

    def _on_record_failed(self, failure: str) -> None:
        self._record_failure = failure
        self._fault = "decision_log_failed"
        self._error = f"the decision log failed ({failure}): acquisition stopped"
        log.error("%s; the frames in flight become ERROR decisions, counted but not written", self._error)
        self._stop.set()

    def _decide_leftovers(self) -> None:
        """Frames a dead stage held (the ledger is empty otherwise): each becomes an ERROR decision."""
        leftovers = list(self._in_flight.values())
        if leftovers:
            log.error("%d frame(s) held by a stage that died become ERROR decisions", len(leftovers))
        for frame in leftovers:
            self._decide(Outcome(Item(frame), None, None, self._error or "lost inside the pipeline"))

    def _publish_status(self) -> None:
        if self._sinks.sinks:  # nobody to tell: skip the percentiles
            self._sinks.on_status(self.status())

    # -- summary

    def _build_summary(self) -> RunSummary:
        return self._counters.summary(
            self.source.name, self.engine.name, self.source.stats,
            backpressure_s=self._capture_q.blocked_s + self._infer_q.blocked_s,
            stop_reason=self._fault or self._stop_reason,
            error=self._error,
            run_id=self.run_id,
            device=self._device,
            sink_stats=self._sinks.stats(),
            sink_notes=self._sinks.notes(),
            model_id=self._stage.model_id,
            model_swaps=self._stage.swaps,
            engine_stats=self.engine.stats(),
        )


def run_pipeline(
    source: FrameSource,
    engine: Engine,
    settings: RuntimeConfig | None = None,
    sinks: list[Sink] | None = None,
    max_frames: int | None = None,
    duration_s: float | None = None,
    roi: Roi | None = None,
    run_id: str | None = None,
) -> RunSummary:
    """Run ``source`` through ``engine`` until ``max_frames``, ``duration_s``, the end of a replay,
    or :meth:`Pipeline.stop`; return the summary. See :class:`Pipeline` for the arguments.

    With neither limit on a camera, the run goes on until another thread stops it; on
    KeyboardInterrupt the frames in flight still drain to decisions before it propagates.
    """
    pipeline = Pipeline(source, engine, settings, sinks, max_frames, duration_s, roi, run_id)
    pipeline.start()
    try:
        summary = pipeline.join()
    finally:
        pipeline.stop()
        summary = pipeline.join()
    return summary
