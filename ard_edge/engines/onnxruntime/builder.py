"""ONNX -> ONNX Runtime-optimized ONNX: the ``build-engine`` target on machines without TensorRT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ard_edge.engines.base import BatchRange, BuildProgress
from ard_edge.engines.onnxruntime.runner import OnnxRuntimeEngine
from ard_edge.errors import EngineError

_PHASE = "ONNX Runtime graph optimization"


def optimize_onnx(src: Path, dst: Path, batch: BatchRange, progress: BuildProgress | None = None) -> dict[str, Any]:
    """Write ``src`` optimized to ``dst``, check that it runs; return the build environment for the sidecar."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # EXTENDED, not ALL: ALL adds layout transforms (NCHWc blocks sized for this CPU's SIMD
    # width), and ONNX Runtime documents that such an offline-optimized model is bound to the
    # hardware it was optimized on. EXTENDED keeps the portable fusions (Conv+activation,
    # Q/DQ -> QLinearConv, ...); the layout step still happens at load time on the line PC,
    # where the engine opens with ORT_ENABLE_ALL.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(dst)
    options.log_severity_level = 3
    progress = progress or BuildProgress()
    progress.phase_start(_PHASE, None, 2)
    try:
        ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises Fail/InvalidGraph/NotImplemented
        raise EngineError(f"ONNX Runtime cannot optimize {src}: {exc}") from exc
    progress.step(_PHASE, 0)
    if not dst.is_file() or dst.stat().st_size == 0:
        raise EngineError(f"ONNX Runtime did not write the optimized model for {src}")
    # The written file must open and run before it replaces anything.
    with OnnxRuntimeEngine(dst, metadata={"threshold": 0.0}) as engine:
        spec = engine.input_spec
        engine.infer(np.zeros((batch.min, spec.height, spec.width, spec.channels), np.uint8))
    progress.step(_PHASE, 1)
    progress.phase_finish(_PHASE)
    return {"onnxruntime_version": ort.__version__, "graph_optimization": "ORT_ENABLE_EXTENDED"}
