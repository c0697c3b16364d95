"""ONNX Runtime backend: the engine on every machine, with the best execution provider present."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ard_edge.engines.base import OUTPUT_NAMES, Engine, InputSpec
from ard_edge.engines.metadata import METADATA_KEY, metadata_from_props
from ard_edge.errors import EngineError

log = logging.getLogger(__name__)

# Fastest first; ONNX Runtime falls back along this list node by node.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def best_providers(requested: list[str] | None = None) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise EngineError(f"ONNX Runtime providers {missing} are not available here (have {available})")
        return list(requested)
    return [p for p in PREFERRED_PROVIDERS if p in available]


def session_options(intra_op_threads: int | None = None, inter_op_threads: int | None = None):
    """Latency-tuned options: all graph optimizations, memory pattern, sequential execution, no spinning.

    ONNX Runtime's workers spin after each call by default, waiting for the next one. Next to
    another engine (``ard-edge bench`` interleaves them) or the runtime's capture and preprocess
    threads, that spinning takes the cores the others need: two sessions interleaved at 2
    threads measured almost twice their solo latency. Without it a call pays a wake-up instead.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_mem_pattern = True
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads or 0  # 0: one per physical core
    options.inter_op_num_threads = inter_op_threads or 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


class OnnxRuntimeEngine(Engine):
    backend = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        providers: list[str] | None = None,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        metadata: dict | None = None,
    ):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise EngineError(f"engine file not found: {path}")
        self.providers = best_providers(providers)
        self.intra_op_threads = intra_op_threads or os.cpu_count()
        try:
            self._session = ort.InferenceSession(
                str(path), session_options(intra_op_threads, inter_op_threads), providers=self.providers
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise EngineError(f"{path} is not a runnable ONNX model ({exc})") from exc
        props = self._session.get_modelmeta().custom_metadata_map
        # What the graph itself says, for comparing with a sidecar's copy; None when it carries none.
        self.embedded_metadata = metadata_from_props(props, path) if METADATA_KEY in props else None
        if metadata is None:
            metadata = metadata_from_props(props, path)
        super().__init__(path, _input_spec(self._session, path), metadata)
        self._output_names = [o.name for o in self._session.get_outputs()]
        missing = set(OUTPUT_NAMES) - set(self._output_names)
        if missing:
            raise EngineError(f"{path} lacks the outputs {sorted(missing)}: re-export it with ard-edge export")
        log.info("opened %s with %s", path, self._session.get_providers())

    def _infer_impl(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        try:
            outputs = self._session.run(self._output_names, {self.input_spec.name: frames})
        except Exception as exc:
            raise EngineError(f"ONNX Runtime failed on a batch of {len(frames)}: {exc}") from exc
        return dict(zip(self._output_names, outputs))

    def describe(self) -> dict:
        info = super().describe()
        info["providers"] = self._session.get_providers()
        info["intra_op_threads"] = self.intra_op_threads
        return info

    def _close_impl(self) -> None:
        del self._session


def _input_spec(session, path: Path) -> InputSpec:
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].type != "tensor(uint8)" or len(inputs[0].shape) != 4:
        raise EngineError(f"{path}: expected one uint8 NHWC input 'frames', got {[(i.name, i.type) for i in inputs]}")
    batch, height, width, channels = inputs[0].shape
    fixed = batch if isinstance(batch, int) else None
    return InputSpec(height, width, channels, min_batch=fixed or 1, max_batch=fixed, name=inputs[0].name)
