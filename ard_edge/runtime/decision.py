"""What the runtime emits per frame: a :class:`Decision`, PASS, FAIL or ERROR."""

from __future__ import annotations

import dataclasses
import datetime
import math
import secrets
import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ard_edge.camera.frames import Frame
    from ard_edge.engines.base import InferenceResult

PASS = "PASS"
FAIL = "FAIL"
ERROR = "ERROR"  # no verdict could be reached (engine fault, bad frame); a reject unless configured
VERDICTS = (PASS, FAIL, ERROR)

# The version every emitted decision carries (log, MQTT, webhook); docs/decision.schema.json
# describes it. Adding an optional field keeps /1; renaming or removing one makes it /2.
SCHEMA = "ard-edge.decision/1"


@dataclasses.dataclass(frozen=True)
class DecisionContext:
    """What every decision of a run carries besides the frame's and the engine's own facts."""

    line: str | None = None  # production line and station names from ard-edge.yaml
    station: str | None = None


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
    run_id: str = ""  # the run that decided it: frame ids restart with every run, run ids do not
    device: dict[str, str | None] | None = None  # the camera's vendor, model and serial
    schema: str = SCHEMA
    precision: str | None = None  # engine precision, from its name
    evidence: str | None = None  # the saved image, relative to the run folder; never the image itself
    line: str | None = None  # from ard-edge.yaml `line:` / `station:`
    station: str | None = None
    model_id: str = ""  # engine file name @ sha256 of its bytes: which model decided (changes on a swap)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def as_error(decision: Decision, error: str, error_is_reject: bool = True) -> Decision:
    """``decision`` turned into an ERROR (a decision that cannot be recorded is not trusted)."""
    return dataclasses.replace(decision, verdict=ERROR, score=None, normalized_score=None, engine_ms=None,
                               reject=error_is_reject, error=error, evidence=None)


def new_run_id() -> str:
    """``20261201T084900Z-3f9a1c``: sorts by start time, unique across restarts within a second."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


NON_FINITE_OUTPUT = "non-finite engine output (NaN or infinity)"  # the error of such a frame


def threshold_error(threshold: float) -> str | None:
    """Why ``threshold`` can give no verdict (NaN or infinite), else None."""
    if math.isfinite(threshold):
        return None
    return f"the engine's threshold is {threshold}, not a finite number: no verdict"


def non_finite(result: InferenceResult) -> np.ndarray:
    """Per frame of a batch: whether its score, normalized score or anomaly map holds a NaN or an infinity.

    A NaN compares False with the threshold, so such a frame would PASS: it must become an ERROR.
    """
    maps_ok = np.isfinite(result.anomaly_map.reshape(len(result.anomaly_map), -1)).all(axis=1)
    return ~(np.isfinite(result.score) & np.isfinite(result.normalized_score) & maps_ok)


def iso_utc(epoch_ns: int) -> str:
    """``epoch_ns`` as ISO 8601 UTC with milliseconds, e.g. ``2026-11-28T15:30:06.123Z``."""
    moment = datetime.datetime.fromtimestamp(epoch_ns / 1e9, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decide(
    frame: Frame,
    result: InferenceResult | None,
    error: str | None,
    engine: str,
    engine_ms: float | None,
    decided_ns: int,
    wall_offset_ns: int,
    error_is_reject: bool = True,
    run_id: str = "",
    device: dict[str, str | None] | None = None,
    context: DecisionContext | None = None,
) -> Decision:
    """The verdict rule: FAIL when the engine calls the frame anomalous, PASS otherwise, ERROR
    when there is no result (``error`` says why). Pure: the pipeline's output thread calls it.

    Args:
        frame: the frame decided on.
        result: its one-frame slice of the engine output; ignored when ``error`` is set.
        error: why the frame could not be inferred (bad frame, engine fault), or None.
        engine: the engine's name, recorded in the decision.
        engine_ms: engine time of the frame's batch.
        decided_ns: ``time.monotonic_ns()`` now; latency is measured from ``frame.received_ns``.
        wall_offset_ns: wall clock minus monotonic clock, for the ``received`` timestamp.
        error_is_reject: whether an ERROR part is rejected (``runtime.error_is_reject``).
        run_id: the run's id, recorded in the decision.
        device: the camera's vendor, model and serial, recorded in the decision.
        context: line and station, recorded in the decision.
    """
    context = context or DecisionContext()
    if error is not None:
        result = None
    if result is None:
        verdict, score, normalized = ERROR, None, None
    else:
        verdict = FAIL if bool(result.is_anomalous[0]) else PASS
        score, normalized = float(result.score[0]), float(result.normalized_score[0])
    return Decision(
        frame_id=frame.frame_id, camera=frame.camera, timestamp=frame.timestamp_ns,
        received=iso_utc(frame.received_ns + wall_offset_ns), score=score, normalized_score=normalized,
        verdict=verdict, latency_ms=round((decided_ns - frame.received_ns) / 1e6, 3), engine=engine,
        reject=verdict == FAIL or (verdict == ERROR and error_is_reject),
        engine_ms=None if result is None else round(engine_ms, 3), source=frame.source, error=error,
        run_id=run_id, device=device, precision=_precision_of(engine), line=context.line, station=context.station,
    )


def _precision_of(engine: str) -> str | None:
    """``int8`` from an engine name ``backend:precision:file``; read per decision, as a swap may change it."""
    parts = engine.split(":")
    return parts[1] if len(parts) >= 3 else None
