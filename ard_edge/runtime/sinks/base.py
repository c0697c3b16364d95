"""The sink interface: where decisions go (log file, evidence images, terminal, later MQTT/OPC UA).

A new output is one new file with one :class:`Sink` subclass. The pipeline calls every sink
from its output thread, one decision at a time and in order, so a sink needs no locking, but
it must be quick: anything slow (image encoding, network I/O) belongs on the sink's own
thread and queue, as :class:`~ard_edge.runtime.sinks.evidence.EvidenceSaver` does.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ard_edge.camera.frames import Frame
    from ard_edge.engines.base import InferenceResult, InputSpec
    from ard_edge.runtime.config import RuntimeConfig
    from ard_edge.runtime.decision import Decision
    from ard_edge.runtime.summary import LiveStatus

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What a sink may want to know before the first decision."""

    camera: str
    engine: str
    threshold: float  # the engine's anomaly-map threshold, for heatmap outlines
    input_spec: InputSpec
    roi: tuple[int, int, int, int] | None  # [x, y, w, h] the engine saw, in frame pixels
    settings: RuntimeConfig


class Sink(abc.ABC):
    """One output of the pipeline. Only :meth:`on_decision` is required.

    A ``critical`` sink keeps the line's record (the decision log): when it raises, the run stops
    acquiring instead of going on without a record (see :class:`SinkFanout`).
    """

    critical = False

    def on_start(self, run: RunInfo) -> None:
        """Called once, before the first decision."""

    @abc.abstractmethod
    def on_decision(self, decision: Decision, frame: Frame, result: InferenceResult | None) -> None:
        """One decision; ``result`` is this frame's slice of the engine output, None for ERROR."""

    def annotate(self, decision: Decision, frame: Frame, result: InferenceResult | None) -> dict[str, Any]:
        """Fields this sink adds to ``decision`` before any sink gets it (e.g. ``evidence``); none by default."""
        return {}

    def on_status(self, status: LiveStatus) -> None:
        """The live status, about every ``runtime.status_interval_s`` seconds."""

    def stats(self) -> dict[str, int]:
        """This sink's counters, kept under ``sink_stats`` in ``summary.json``; empty by default."""
        return {}

    def summary_note(self) -> str | None:
        """A phrase for the end-of-run summary line (e.g. ``evidence saved 3, skipped 0``); None says nothing."""
        return None

    def close(self) -> None:
        """Flush and release; called once after the last decision, harmless twice."""

    def warn_once(self, key: str, message: str) -> None:
        """Log ``message`` as a warning the first time ``key`` comes up: a sink's trouble repeats per frame."""
        warned = self.__dict__.setdefault("_warned_keys", set())
        if key not in warned:
            warned.add(key)
            log.warning(message)

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class SinkFanout:
    """Hands every event to every sink, critical sinks first. A sink that raises is logged once, with
    its first traceback, and keeps getting events: one broken output must not stop decisions
    reaching the others. A critical sink's failure is returned to the pipeline instead.
    """

    def __init__(self, sinks: Sequence[Sink]):
        self.sinks = sorted(sinks, key=lambda sink: not sink.critical)  # stable: the given order otherwise
        self._failed: set[int] = set()

    def on_start(self, run: RunInfo) -> None:
        for sink in self.sinks:
            sink.on_start(run)  # a sink that cannot start stops the run before the first frame

    def on_decision(self, decision: Decision, frame: Frame, result: InferenceResult | None) -> str | None:
        """Deliver one decision; return why a critical sink failed (no other sink has it then), else None."""
        decision = self.annotated(decision, frame, result)
        for sink in self.sinks:
            try:
                sink.on_decision(decision, frame, result)
            except Exception as exc:  # noqa: BLE001 - see the class docstring
                if sink.critical:
                    return str(exc) or type(exc).__name__
                self._failed_once(sink)
        return None

    def annotated(self, decision: Decision, frame: Frame, result: InferenceResult | None) -> Decision:
        """``decision`` with every sink's :meth:`Sink.annotate` fields, so all sinks emit the same record."""
        extra: dict[str, Any] = {}
        for sink in self.sinks:
            try:
                extra.update(sink.annotate(decision, frame, result))
            except Exception:  # noqa: BLE001 - see the class docstring
                self._failed_once(sink)
        return dataclasses.replace(decision, **extra) if extra else decision

    def on_status(self, status: LiveStatus) -> None:
        for sink in self.sinks:
            try:
                sink.on_status(status)
            except Exception:  # noqa: BLE001 - see the class docstring
                self._failed_once(sink)

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - one sink failing to flush must not keep the others open
                log.exception("closing sink %s failed", type(sink).__name__)

    def stats(self) -> dict[str, int]:
        merged: dict[str, int] = {}
        for sink in self.sinks:
            merged.update(sink.stats())
        return merged

    def notes(self) -> list[str]:
        return [note for sink in self.sinks if (note := sink.summary_note())]

    def _failed_once(self, sink: Sink) -> None:
        if id(sink) not in self._failed:  # the first traceback says it all; don't flood the log
            self._failed.add(id(sink))
            log.exception("sink %s failed (decisions go on; further failures of this sink are not logged)",
                          type(sink).__name__)
