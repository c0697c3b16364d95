"""The sink interface: where decisions go (log file, evidence images, terminal, later MQTT/OPC UA).

A new output is one new file with one :class:`Sink` subclass. The pipeline calls every sink
from its output thread, one decision at a time and in order, so a sink needs no locking, but
it must be quick: anything slow (image encoding, network I/O) belongs on the sink's own
thread and queue, as :class:`~ard_edge.runtime.sinks.evidence.EvidenceSaver` does.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ard_edge.camera.frames import Frame
    from ard_edge.engines.base import InferenceResult, InputSpec
    from ard_edge.runtime.config import RuntimeConfig
    from ard_edge.runtime.decision import Decision
    from ard_edge.runtime.summary import LiveStatus


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
    """One output of the pipeline. Only :meth:`on_decision` is required."""

    def on_start(self, run: RunInfo) -> None:
        """Called once, before the first decision."""

    @abc.abstractmethod
    def on_decision(self, decision: Decision, frame: Frame, result: InferenceResult | None) -> None:
        """One decision; ``result`` is this frame's slice of the engine output, None for ERROR."""

    def on_status(self, status: LiveStatus) -> None:
        """The live status, about every ``runtime.status_interval_s`` seconds."""

    def stats(self) -> dict[str, int]:
        """Counters for the run summary (e.g. ``evidence_saved``); empty by default."""
        return {}

    def close(self) -> None:
        """Flush and release; called once after the last decision, harmless twice."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
