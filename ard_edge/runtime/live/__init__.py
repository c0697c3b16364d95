"""The live view of a run: a web page, ``/metrics`` (Prometheus), ``/healthz``, ``/readyz`` and ``/api/status``.

:class:`LiveServer` serves them from the run's process on a thread of its own; its board's
sinks (:meth:`LiveBoard.sink`, one per pipeline) feed it. uvicorn and prometheus-client are
the ``live`` extra, imported only when a server starts.
"""

from ard_edge.runtime.live.board import LiveBoard, LiveSink
from ard_edge.runtime.live.server import TOKEN_ENV, LiveServer, is_local

__all__ = ["TOKEN_ENV", "LiveBoard", "LiveServer", "LiveSink", "is_local"]
