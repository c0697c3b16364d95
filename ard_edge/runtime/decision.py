"""What the runtime emits per frame: a :class:`Decision`, PASS, FAIL or ERROR."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

PASS = "PASS"
FAIL = "FAIL"
ERROR = "ERROR"  # no verdict could be reached (engine fault, bad frame); a reject unless configured
VERDICTS = (PASS, FAIL, ERROR)


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome for one frame, as written to ``decisions.jsonl`` (one object a line).

    ``timestamp`` and ``received`` keep the names of the decision-log format; their units are
    given here instead: camera nanoseconds and host wall clock (ISO 8601, UTC).
    """

    frame_id: int
    camera: str
    timestamp: int  # camera (device) timestamp, ns; 0 when the device gives none
    received: str  # host wall-clock time the frame arrived, ISO 8601 UTC with ms
    score: float | None  # raw anomaly score; None for ERROR
    normalized_score: float | None  # 0.5 at the threshold; None for ERROR
    verdict: str  # PASS, FAIL or ERROR
    latency_ms: float  # host receive -> decision, monotonic clock
    engine: str  # engine name (backend:precision:file)
    reject: bool  # what the line should do with the part: FAIL, and ERROR unless configured otherwise
    engine_ms: float | None = None  # engine time of the batch the frame ran in; None for ERROR
    source: str | None = None  # replay only: the file the frame came from
    error: str | None = None  # ERROR only: what went wrong

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def iso_utc(epoch_ns: int) -> str:
    """``epoch_ns`` as ISO 8601 UTC with milliseconds, e.g. ``2026-11-28T15:30:06.123Z``."""
    moment = datetime.datetime.fromtimestamp(epoch_ns / 1e9, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
