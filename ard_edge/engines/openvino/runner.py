"""OpenVINO backend: runs the IR that ``build-engine --target openvino`` writes.

The compiled model is asked back for the precision it really infers in: on CPUs with bf16
units OpenVINO's default is bf16, which would slip a precision change past the accuracy gate.
Here the hint is always set, read back, and refused when the device does not run it.
"""

from __future__ import annotations

import collections
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ard_edge.engines.base import OUTPUT_NAMES, Engine, InputSpec
from ard_edge.engines.metadata import METADATA_KEY
from ard_edge.errors import ConfigError, EngineError, require

log = logging.getLogger(__name__)

# Engine precision -> OpenVINO's INFERENCE_PRECISION_HINT. int8 is the Q/DQ graph: its quantized
# layers run in 8 bits whatever the hint, which sets the precision of the float layers around them.
# Those stay f32: on magnetic tile bf16 flipped 5% of the default model's decisions (docs/openvino.md).
# mixed is f32 too: its IR itself types the memory bank's search bf16 (see builder.lower_bank_search).
INFERENCE_PRECISIONS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "mixed": "f32", "int8": "f32"}
HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}
WEIGHTS_SUFFIX = ".bin"


def weights_path(engine_path: str | Path) -> Path:
    """The IR's weights file beside the engine (the engine file is the IR's XML)."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + WEIGHTS_SUFFIX)


def compile_properties(inference_precision: str, threads: int | None, hint: str) -> dict[str, Any]:
    """The CPU plugin's properties: one stream, ``threads`` workers, and no pinning.

    Pinning binds OpenVINO's workers to cores; interleaved with another engine, or with the
    runtime's capture and preprocess threads, a pinned worker waits for its core instead of
    taking a free one.
    """
    if hint not in HINTS:
        raise ConfigError(f"openvino hint {hint!r}: expected one of {', '.join(HINTS)}")
    return {
        "INFERENCE_PRECISION_HINT": inference_precision,
        "INFERENCE_NUM_THREADS": int(threads or 0),  # 0: OpenVINO's choice, one per core
        "PERFORMANCE_HINT": HINTS[hint],
        "ENABLE_CPU_PINNING": False,
    }


class OpenVINOEngine(Engine):
    backend = "openvino"

    def __init__(
        self,
        path: str | Path,
        inference_precision: str,
        metadata: dict | None = None,
        precision: str | None = None,
        threads: int | None = None,
        hint: str = "latency",
        device: str = "CPU",
        weights: str | Path | None = None,
    ):
        ov = require("openvino", "openvino")
        path = Path(path)
        weights = Path(weights) if weights is not None else weights_path(path)
        if not path.is_file() or not weights.is_file():
            raise EngineError(f"OpenVINO engine {path} needs its IR XML and {weights.name} beside it:"
                              " rebuild with ard-edge build-engine --target openvino")
        core = ov.Core()
        try:
            model = core.read_model(str(path), str(weights))
            self._compiled = core.compile_model(model, device, compile_properties(inference_precision, threads, hint))
        except Exception as exc:  # openvino raises RuntimeError with its own text
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EngineError(f"{path} is not a runnable OpenVINO IR ({first}): rebuild with"
                              " ard-edge build-engine --target openvino") from exc
        runs = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if runs != inference_precision:
            raise EngineError(f"{path}: {device} runs {runs}, not the {inference_precision} it was built and gated"
                              " for: rebuild the engine on this machine with ard-edge build-engine")
        self.embedded_metadata = _embedded_metadata(model)
        if metadata is None:
            if self.embedded_metadata is None:
                raise EngineError(f"{path} carries no ard-edge metadata: build it with ard-edge build-engine")
            metadata = self.embedded_metadata
        if precision is not None:
            metadata = {**metadata, "precision": precision}
        self.device = device
        self.hint = hint
        self.inference_precision = inference_precision
        self.intra_op_threads = int(self._compiled.get_property("INFERENCE_NUM_THREADS"))
        self.runtime_precisions = _runtime_precisions(self._compiled)
        super().__init__(path, _input_spec(self._compiled, path), metadata)
        self._output_names = [output.any_name for output in self._compiled.outputs]
        missing = set(OUTPUT_NAMES) - set(self._output_names)
        if missing:
            raise EngineError(f"{path} lacks the outputs {sorted(missing)}: rebuild it from an ard-edge export")
        self._request = self._compiled.create_infer_request()
        log.info("opened %s on %s (%s, %d threads)", path, device, inference_precision, self.intra_op_threads)

    def _infer_impl(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        try:
            self._request.infer({0: frames})
        except Exception as exc:
            raise EngineError(f"OpenVINO failed on a batch of {len(frames)}: {exc}") from exc
        # Copies: the request reuses its output buffers on the next call.
        return {name: np.array(self._request.get_tensor(name).data) for name in self._output_names}

    def describe(self) -> dict:
        info = super().describe()
        info.update(device=self.device, hint=self.hint, inference_precision=self.inference_precision,
                    intra_op_threads=self.intra_op_threads, runtime_precisions=self.runtime_precisions)
        return info

    def _close_impl(self) -> None:
        del self._request, self._compiled


def _embedded_metadata(model) -> dict | None:
    """The ard-edge metadata the builder put into the IR's rt_info, or None."""
    if not model.has_rt_info([METADATA_KEY, "metadata"]):
        return None
    return json.loads(model.get_rt_info([METADATA_KEY, "metadata"]).astype(str))


def _runtime_precisions(compiled) -> dict[str, int]:
    """How many executed layers run in each precision (the compiled graph's own account)."""
    counts: collections.Counter[str] = collections.Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "runtimePrecision" in info and op.get_type_name() not in ("Parameter", "Result", "Constant"):
            counts[str(info["runtimePrecision"].astype(str))] += 1
    return dict(sorted(counts.items()))


def _input_spec(compiled, path: Path) -> InputSpec:
    inputs = compiled.inputs
    shape = inputs[0].get_partial_shape() if len(inputs) == 1 else None
    if shape is None or shape.rank.get_length() != 4 or inputs[0].get_element_type().get_type_name() != "u8":
        raise EngineError(f"{path}: expected one uint8 NHWC input 'frames'")
    batch, height, width, channels = shape
    if not all(dim.is_static for dim in (height, width, channels)):
        raise EngineError(f"{path}: the frame size must be static, got {shape}")
    low = batch.get_min_length()
    high = batch.get_max_length()
    return InputSpec(height.get_length(), width.get_length(), channels.get_length(), min_batch=max(low, 1),
                     max_batch=None if high < 0 else high, name=inputs[0].any_name)
