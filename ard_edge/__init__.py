"""ard-edge: attention reverse-distillation anomaly detection, from training to the line.

Importing the package is cheap: torch, onnxruntime, tensorrt and harvesters load only when the
feature that needs them is used.
"""

from ard_edge._version import __version__
from ard_edge.errors import (
    ArdEdgeError,
    CameraError,
    CameraTimeout,
    CheckpointError,
    ConfigError,
    EngineError,
    MissingDependency,
)


def open_engine(path, **options):
    """Open a model file (.onnx, .ckpt, .engine/.plan) as an :class:`~ard_edge.engines.Engine`."""
    from ard_edge.engines import open_engine as _open

    return _open(path, **options)


__all__ = [
    "ArdEdgeError",
    "CameraError",
    "CameraTimeout",
    "CheckpointError",
    "ConfigError",
    "EngineError",
    "MissingDependency",
    "__version__",
    "open_engine",
]
