"""Pipeline outputs behind one small interface (:class:`Sink`); a new output is one new module."""

from ard_edge.runtime.sinks.base import RunInfo, Sink
from ard_edge.runtime.sinks.decision_log import DECISIONS_NAME, DecisionLog
from ard_edge.runtime.sinks.evidence import EvidenceSaver

__all__ = ["DECISIONS_NAME", "DecisionLog", "EvidenceSaver", "RunInfo", "Sink"]
