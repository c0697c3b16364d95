"""The inference stage: one engine, one thread, fed by the queues of one or more cameras.

Cameras that share an engine file share one :class:`InferenceStage`: it takes ready frames from
every camera's queue in turn (round robin, so a busy camera cannot starve a quiet one), runs
them as one batch and hands each result back to its own camera's output queue. A camera that
stalls or reconnects only leaves its queue empty; the others keep filling batches.

The stage also swaps its engine without stopping (:meth:`InferenceStage.offer`): the new engine
arrives opened and warmed, and the stage switches between two batches, so every frame runs on
exactly one engine and its decision names that engine's model id.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ard_edge._io import sha256_file
from ard_edge.engines.base import Engine, InferenceResult, InputSpec
from ard_edge.errors import EngineError
from ard_edge.runtime._queue import CLOSED, EMPTY, StageQueue
from ard_edge.runtime.config import RuntimeConfig
from ard_edge.runtime.decision import NON_FINITE_OUTPUT, non_finite, threshold_error

if TYPE_CHECKING:
    from ard_edge.camera.frames import Frame

log = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.2  # bound on one wait for frames, so a missed wake-up costs at most this


@dataclasses.dataclass
class Item:
    """A frame on its way through the stages."""

    frame: Frame
    tensor: np.ndarray | None = None  # engine input (HxWxC), None when preprocessing failed
    error: str | None = None  # why this frame cannot be inferred (bad frame)
    ready_s: float = 0.0  # monotonic time it became ready for inference


@dataclasses.dataclass
class Outcome:
    """An inferred (or failed) item, ready to become a decision."""

    item: Item
    result: InferenceResult | None
    engine_ms: float | None
    error: str | None = None
    engine: str = ""  # name of the engine that ran it (or would have)
    model_id: str = ""  # that engine's model id


def batch_size_for(spec: InputSpec, requested: int) -> int:
    """Frames per engine call: ``requested`` within the engine's range; a fixed-batch engine's size."""
    if spec.fixed_batch is not None:
        return spec.fixed_batch
    size = max(requested, spec.min_batch)
    return size if spec.max_batch is None else min(size, spec.max_batch)


def model_id_of(path: str | Path) -> str:
    """``name@sha256:HEX`` of an engine file: which model decided, down to the byte."""
    path = Path(path)
    return f"{path.name}@sha256:{sha256_file(path)}"


def check_fits(old: InputSpec, new: InputSpec) -> None:
    """Refuse a replacement engine that would not take the frames the cameras are prepared for."""
    if (old.height, old.width, old.channels) != (new.height, new.width, new.channels):
        raise EngineError(f"it takes {new.height}x{new.width}x{new.channels} frames but the cameras deliver"
                          f" {old.height}x{old.width}x{old.channels}: export it with the same size and channels")


class Lane(Protocol):
    """What the stage needs of one camera (a :class:`~ard_edge.runtime.pipeline.Pipeline`)."""

    infer_q: StageQueue  # its ready frames
    output_q: StageQueue  # where its outcomes go

    def on_batch(self, size: int, engine_ms: float) -> None:
        """``size`` of its frames ran in a batch that took ``engine_ms``."""

    def on_non_finite(self) -> None:
        """One of its frames got a NaN or infinite output."""

    def on_stage_crashed(self, error: str) -> None:
        """The stage died: stop acquiring; the frames in flight become ERROR decisions."""


class InferenceStage:
    """One engine and the thread that runs it for every lane (camera) registered with :meth:`add_lane`.

    Args:
        engine: an opened engine; the stage closes it when it swaps it out, not otherwise. Engines
            swapped in are the stage's own: :meth:`close` closes them.
        settings: batching (``batch``, ``max_wait_ms``).
        model_id: recorded in decisions; from the engine file when None.
    """

    def __init__(self, engine: Engine, settings: RuntimeConfig, model_id: str | None = None):
        self.engine = engine
        self.model_id = model_id if model_id is not None else model_id_of(engine.path)
        self.settings = settings
        self.batch_size = batch_size_for(engine.input_spec, settings.batch)
        self.swaps = 0
        self.batches = 0  # engine calls, over every lane
        self._owns_engine = False
        self._warm = False
        self._lanes: list[Lane] = []
        self._pending: tuple[Engine, str] | None = None
        self._lock = threading.Lock()
        self._bell = threading.Condition()
        self._rings = 0
        self._thread: threading.Thread | None = None
        self._next_lane = 0

    # -- lanes and lifecycle

    def add_lane(self, lane: Lane) -> None:
        """Register a camera before :meth:`start`; its infer queue wakes this stage on every put."""
        if self._thread is not None:
            raise RuntimeError("add every lane before the inference stage starts")
        lane.infer_q.on_change = self._ring
        self._lanes.append(lane)

    def warm_up(self) -> None:
        """Warm the engine once, before the thread starts: the cameras that start later must not
        call it beside the thread (a TensorRT context runs one call at a time)."""
        with self._lock:
            if not self._warm and self._thread is None:
                self.engine.warmup(2, batch=self.batch_size)
                self._warm = True

    def start(self) -> None:
        """Start the thread (once; later calls do nothing). It ends when every lane's queue closed."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._guarded, name="ard-inference", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Wait for the thread (after every lane closed), then close the engines swapped in; harmless twice."""
        if self._thread is not None:
            self._thread.join()
        self._close_pending()
        if self._owns_engine:
            self.engine.close()

    def offer(self, engine: Engine, model_id: str) -> None:
        """Switch to ``engine`` (opened, warmed) before the next batch; it must take the same frames.

        Raises:
            EngineError: its input does not fit (the caller closes it; the current engine keeps running).
        """
        check_fits(self.engine.input_spec, engine.input_spec)
        with self._lock:
            replaced, self._pending = self._pending, (engine, model_id)
        if replaced is not None:  # two offers before a batch ran: the first never served
            replaced[0].close()
        self._ring()

    def _ring(self) -> None:
        with self._bell:
            self._rings += 1
            self._bell.notify_all()

    # -- the thread

    def _guarded(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - logged with its traceback; its frames are in the ledgers
            log.exception("the inference stage crashed: its frames become ERROR decisions and the run stops")
            error = f"the inference stage crashed ({type(exc).__name__}: {exc})"
            for lane in self._lanes:
                lane.on_stage_crashed(error)
            for lane in self._lanes:  # let the stages upstream finish instead of waiting on a queue nobody empties
                while lane.infer_q.get() is not CLOSED:
                    pass
                lane.output_q.close()
        finally:
            self._close_pending()

    def _loop(self) -> None:
        open_lanes = list(self._lanes)
        while open_lanes:
            self._switch_if_offered()
            batch, held, closed = self._collect(open_lanes)
            if batch:
                self._run_batch(batch)
            for lane, item in held:  # a bad frame ends its camera's part of the batch: decisions keep capture order
                lane.output_q.put(Outcome(item, None, None, None, self.engine.name, self.model_id))
            for lane in closed:
                lane.output_q.close()
                open_lanes.remove(lane)

    def _switch_if_offered(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        old, old_id = self.engine, self.model_id
        self.engine, self.model_id = pending
        self.batch_size = batch_size_for(self.engine.input_spec, self.settings.batch)
        self.swaps += 1
        self._owns_engine = True
        log.warning("model swapped between batches: %s -> %s", old_id, self.model_id)
        old.close()

    def _close_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            pending[0].close()

    def _collect(self, lanes: list[Lane]) -> tuple[list[tuple[Lane, Item]], list[tuple[Lane, Item]], list[Lane]]:
        """Gather up to ``batch_size`` ready items across lanes, waiting at most ``max_wait_ms``
        after the first; return (items to infer, bad items that ended their lane's part, closed lanes)."""
        batch: list[tuple[Lane, Item]] = []
        held: list[tuple[Lane, Item]] = []
        closed: list[Lane] = []
        deadline_s = None
        start = self._next_lane = (self._next_lane + 1) % len(lanes)
        order = lanes[start:] + lanes[:start]
        while len(batch) < self.batch_size:
            with self._bell:
                rings = self._rings
            took = False
            for lane in order:
                if len(batch) >= self.batch_size:
                    break
                if any(lane is other for other, _ in held) or lane in closed:
                    continue
                item = lane.infer_q.get(timeout_s=0.0)
                if item is EMPTY:
                    continue
                took = True
                if item is CLOSED:
                    closed.append(lane)
                elif item.error is not None:
                    held.append((lane, item))
                else:
                    batch.append((lane, item))
                    if deadline_s is None:
                        deadline_s = item.ready_s + self.settings.max_wait_ms / 1000.0
            if took:
                continue
            if held or closed:
                break  # something to hand on now; don't hold it back for a fuller batch
            wait_s = _IDLE_WAIT_S if deadline_s is None else deadline_s - time.monotonic()
            if wait_s <= 0:
                break
            with self._bell:
                if self._rings == rings:
                    self._bell.wait(min(wait_s, _IDLE_WAIT_S))
        return batch, held, closed

    def _run_batch(self, batch: list[tuple[Lane, Item]]) -> None:
        engine, model_id = self.engine, self.model_id
        frames = engine.input_spec.pad(np.stack([item.tensor for _, item in batch]))
        start = time.perf_counter()
        try:
            result = engine.infer(frames)
        except Exception as exc:  # noqa: BLE001 - fail safe: the frames become ERROR decisions
            message = f"engine failed on a batch of {len(batch)}: {exc}"
            log.warning("%s", message, exc_info=not isinstance(exc, EngineError))
            for lane, item in batch:
                lane.output_q.put(Outcome(item, None, None, message, engine.name, model_id))
            return
        engine_ms = (time.perf_counter() - start) * 1000.0
        self.batches += 1
        for lane in {id(lane): lane for lane, _ in batch}.values():
            lane.on_batch(sum(1 for other, _ in batch if other is lane), engine_ms)
        bad = non_finite(result)
        wrong_threshold = threshold_error(engine.threshold)
        for index, (lane, item) in enumerate(batch):
            if bad[index]:
                lane.on_non_finite()
            error = wrong_threshold or (NON_FINITE_OUTPUT if bad[index] else None)
            lane.output_q.put(Outcome(item, None if error else result[index], engine_ms, error, engine.name, model_id))
