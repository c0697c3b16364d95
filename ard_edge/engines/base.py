"""The engine interface every backend implements (ONNX Runtime, PyTorch, TensorRT).

Plain data in, plain data out: callers hand a uint8 NHWC batch to :meth:`Engine.infer` and get
an :class:`InferenceResult` of numpy arrays, so the runtime and the benchmarks never branch on
the backend. Backends override only ``_infer_impl`` and ``_close_impl``; the public methods
check the input and the engine's state.

Builders share :data:`PRECISIONS`, :class:`BatchRange` and :class:`BuildProgress`.
"""

from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ard_edge._graph import INPUT_NAME, OUTPUT_NAMES
from ard_edge.errors import EngineError

# mixed: OpenVINO only, the memory bank's search in bf16 and the rest in fp32.
PRECISIONS = ("fp32", "fp16", "bf16", "mixed", "int8")


@dataclasses.dataclass(frozen=True)
class BatchRange:
    """The batch sizes an engine accepts (TensorRT optimization profile: min, opt, max)."""

    min: int
    opt: int
    max: int

    def __str__(self) -> str:
        return f"{self.min}:{self.opt}:{self.max}"

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.min, self.opt, self.max)


class BuildProgress:
    """Receives build progress. The CLI draws it; the default ignores it.

    TensorRT 10+ reports phases and steps (``phase_start``/``step``/``phase_finish``), possibly
    from its own threads; older TensorRT and ONNX Runtime only ``tick`` with the elapsed time.
    """

    def phase_start(self, name: str, parent: str | None, num_steps: int) -> None:
        pass

    def step(self, name: str, step: int) -> bool:
        """Return False to cancel the build."""
        return True

    def phase_finish(self, name: str) -> None:
        pass

    def tick(self, elapsed_s: float) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What an engine accepts: a uint8 batch laid out NHWC, channels as the camera delivers."""

    height: int
    width: int
    channels: int
    min_batch: int = 1
    max_batch: int | None = None  # None: any batch size
    name: str = INPUT_NAME
    dtype: str = "uint8"
    layout: str = "NHWC"

    @property
    def fixed_batch(self) -> int | None:
        return self.min_batch if self.max_batch == self.min_batch else None

    def pad(self, frames: np.ndarray) -> np.ndarray:
        """``frames`` filled up to ``min_batch`` by repeating them; only the first ``len(frames)`` results count.

        Repeated frames rather than black ones: calibration measures ranges on these batches too.
        """
        missing = self.min_batch - len(frames)
        if missing <= 0:
            return frames
        return np.concatenate([frames, frames[np.arange(missing) % len(frames)]])

    def check_channels(self, channels: int, pixel_format: str | None = None) -> None:
        """Raise EngineError, naming both ways out, unless frames of ``channels`` channels fit this engine."""
        if channels == self.channels:
            return
        fmt = f" ({pixel_format})" if pixel_format else ""
        kind = "mono (e.g. Mono8)" if self.channels == 1 else "colour (e.g. RGB8, BayerRG8)"
        raise EngineError(
            f"the engine takes {self.channels}-channel frames but the camera delivers {channels}-channel"
            f" frames{fmt}: re-export the model with `ard-edge export --channels {channels}`"
            f" or set the camera's pixel_format to a {kind} format"
        )

    def check(self, frames: np.ndarray) -> np.ndarray:
        """Return ``frames`` as a contiguous NHWC batch, or raise EngineError saying what is wrong."""
        if not isinstance(frames, np.ndarray):
            raise EngineError(f"frames must be a numpy array, got {type(frames).__name__}")
        if frames.dtype != np.uint8:
            raise EngineError(f"frames must be uint8 (raw camera pixels), got {frames.dtype}")
        if frames.ndim == 3 and self.channels == 1 and frames.shape[-1] != 1:
            frames = frames[..., None]  # a batch of mono HxW frames
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4:
            raise EngineError(f"frames must be NHWC, got shape {frames.shape}")
        _, height, width, channels = frames.shape
        self.check_channels(channels)
        if (height, width) != (self.height, self.width):
            raise EngineError(
                f"engine expects {self.height}x{self.width} frames, got {height}x{width}"
            )
        batch = frames.shape[0]
        if batch < self.min_batch or (self.max_batch is not None and batch > self.max_batch):
            upper = "any" if self.max_batch is None else self.max_batch
            raise EngineError(f"batch {batch} outside this engine's range {self.min_batch}..{upper}")
        return np.ascontiguousarray(frames)


@dataclasses.dataclass(frozen=True)
class InferenceResult:
    """Outputs for one batch; index it to get one frame's result."""

    anomaly_map: np.ndarray  # float32, (batch, 1, H, W)
    score: np.ndarray  # float32, (batch,)
    normalized_score: np.ndarray  # float32, (batch,), 0.5 at the threshold, clipped to 0..1
    is_anomalous: np.ndarray  # bool, (batch,)

    @classmethod
    def from_outputs(cls, outputs: dict[str, np.ndarray]) -> InferenceResult:
        missing = [name for name in OUTPUT_NAMES if name not in outputs]
        if missing:
            raise EngineError(f"engine did not produce outputs {missing}")
        return cls(
            anomaly_map=np.asarray(outputs["anomaly_map"], dtype=np.float32),
            score=np.asarray(outputs["score"], dtype=np.float32).reshape(-1),
            normalized_score=np.asarray(outputs["normalized_score"], dtype=np.float32).reshape(-1),
            is_anomalous=np.asarray(outputs["is_anomalous"]).astype(bool).reshape(-1),
        )

    def __len__(self) -> int:
        return len(self.score)

    def __getitem__(self, index: int) -> InferenceResult:
        sl = slice(index, index + 1)
        return InferenceResult(
            self.anomaly_map[sl], self.score[sl], self.normalized_score[sl], self.is_anomalous[sl]
        )


class Engine(abc.ABC):
    """An opened model that turns uint8 frames into anomaly maps, scores and decisions.

    Use it as a context manager; ``close`` twice is harmless.
    """

    backend: str = "base"

    def __init__(self, path: str | Path, input_spec: InputSpec, metadata: dict[str, Any]):
        threshold = metadata.get("threshold") if isinstance(metadata, dict) else None
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
            # A NaN threshold is a number: the runtime turns its every frame into an ERROR decision.
            raise EngineError(f"{path}: its ard-edge metadata has no numeric threshold ({threshold!r}):"
                              " re-export the model with ard-edge export")
        self.path = Path(path)
        self.input_spec = input_spec
        self.metadata = metadata
        self._closed = False

    @property
    def name(self) -> str:
        precision = self.metadata.get("precision", "fp32")
        return f"{self.backend}:{precision}:{self.path.name}"

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])

    def infer(self, frames: np.ndarray) -> InferenceResult:
        if self._closed:
            raise EngineError(f"engine {self.path} is closed")
        return InferenceResult.from_outputs(self._infer_impl(self.input_spec.check(frames)))

    def warmup(self, iterations: int = 3, batch: int | None = None) -> None:
        """Run a few dummy batches so first-call costs (allocation, autotuning) leave the timings."""
        spec = self.input_spec
        batch = batch or spec.min_batch
        dummy = np.zeros((batch, spec.height, spec.width, spec.channels), np.uint8)
        for _ in range(iterations):
            self.infer(dummy)

    def stats(self) -> dict[str, int]:
        """This engine's counters (a remote engine's disconnects and reconnects), kept in the run summary."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "path": str(self.path),
            "input": dataclasses.asdict(self.input_spec),
            "metadata": self.metadata,
        }

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close_impl()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @abc.abstractmethod
    def _infer_impl(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Run a checked uint8 NHWC batch; return the four named outputs."""

    def _close_impl(self) -> None:
        """Release backend resources (sessions, device memory)."""
