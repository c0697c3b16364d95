"""TensorRT backend: build a plan from an ard-edge ONNX, run it with pycuda.

Importing this package never imports tensorrt or pycuda; they load when an engine is opened or
built, and their absence raises ``MissingDependency('tensorrt', 'tensorrt')`` then.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "TensorRTEngine": "ard_edge.engines.tensorrt.runner",
    "build_serialized_engine": "ard_edge.engines.tensorrt.builder",
    "TensorRTBuild": "ard_edge.engines.tensorrt.builder",
    "current_environment": "ard_edge.engines.tensorrt._environment",
    "probe": "ard_edge.engines.tensorrt._environment",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)
