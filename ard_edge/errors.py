"""The one exception tree of ard-edge.

    ArdEdgeError                 a user can fix it; the CLI prints one line, no traceback
    ├── ConfigError              bad config key/value or command-line usage   (exit 2)
    ├── DataError                missing, empty or unreadable images/masks    (exit 1)
    ├── CheckpointError          not an ard-edge checkpoint, corrupted, foreign
    ├── ExportError              the model cannot be exported
    ├── CalibrationError         quantization failed
    │   └── AccuracyGateRefused  the INT8 model strays too far from FP32      (exit 3)
    ├── EngineError              bad engine file, wrong input, wrong GPU/TensorRT
    ├── CameraError              producer/device problems, settings the camera refuses
    │   ├── CameraTimeout        no frame within the timeout
    │   ├── CameraDisconnected   the device went away; fetch keeps trying to reopen it
    │   └── EndOfStream          a replay source has no more frames
    ├── OutputError              an output cannot be written: not a folder, read-only, disk full,
    │                            or the --out folder is locked by another run
    ├── RunFailed                `run` ended early: camera fault, a crashed stage, the decision
    │                            log could not be written (every frame still has a decision)
    └── MissingDependency        an optional package is not installed

Errors from lower libraries are converted at the boundary with ``raise ... from exc``.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ArdEdgeError(Exception):
    """Base of every error a user can act on."""

    exit_code = 1


class ConfigError(ArdEdgeError):
    exit_code = 2


class DataError(ArdEdgeError):
    pass


class CheckpointError(ArdEdgeError):
    pass


class ExportError(ArdEdgeError):
    pass


class CalibrationError(ArdEdgeError):
    pass


class AccuracyGateRefused(CalibrationError):
    """The INT8 model lost too much; its own exit status lets a script fall back to FP32.

    ``report`` is the calibration report with the gate's numbers, for the caller to show.
    """

    exit_code = 3

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


class EngineError(ArdEdgeError):
    pass


class CameraError(ArdEdgeError):
    pass


class CameraTimeout(CameraError):
    pass


class CameraDisconnected(CameraError):
    """The device is gone; later ``fetch`` calls reopen it with exponential backoff."""


class EndOfStream(CameraError):
    """A folder or video replay ran out of frames and is not looping."""


class OutputError(ArdEdgeError):
    pass


class RunFailed(ArdEdgeError):
    """The run's summary says what happened to every frame; this only makes the exit status non-zero."""


class MissingDependency(ArdEdgeError):
    """An optional package is missing; the message names the pip extra that brings it."""

    def __init__(self, module: str, extra: str):
        super().__init__(f"'{module}' is not installed: pip install 'ard-edge[{extra}]'")
        self.module = module
        self.extra = extra


def require(module: str, extra: str):
    """Import an optional module, or raise MissingDependency naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(module, extra) from exc
