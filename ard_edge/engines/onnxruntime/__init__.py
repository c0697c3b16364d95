"""ONNX Runtime backend: the runner (any machine, best execution provider present) and the builder
that writes the offline-optimized graph ``build-engine`` ships. onnxruntime loads when either runs.
"""

from ard_edge.engines.onnxruntime.runner import OnnxRuntimeEngine

__all__ = ["OnnxRuntimeEngine"]
