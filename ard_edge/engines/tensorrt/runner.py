"""TensorRT engine: a deserialized plan run with pycuda through the name-based I/O API.

Buffers are allocated once, for the largest batch of the optimization profile: one page-locked
host array and one device allocation per I/O tensor, their addresses bound to the execution
context at open. A call copies its batch in, runs ``execute_async_v3`` on the engine's stream and
copies the outputs back, timing the GPU work with CUDA events.

The engine retains the device's primary context (the one TensorRT's runtime API uses) and makes
it current around every call, so it can be used from any thread (one call at a time).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ard_edge.engines.base import INPUT_NAME, OUTPUT_NAMES, Engine, InputSpec
from ard_edge.engines.sidecar import check_compatible, read_sidecar, rebuild_command
from ard_edge.engines.tensorrt._compat import check_supported, numpy_dtype, parse_version
from ard_edge.errors import EngineError, require

log = logging.getLogger(__name__)


class _Binding:
    """One I/O tensor: page-locked host array and device memory, both sized for the max batch."""

    def __init__(self, cuda, name: str, dtype: np.dtype, max_shape: tuple[int, ...]):
        self.name = name
        self.max_shape = max_shape
        self.host = cuda.pagelocked_empty(int(np.prod(max_shape)), dtype)
        self.device = cuda.mem_alloc(max(self.host.nbytes, 1))

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.host[: int(np.prod(shape))].reshape(shape)


class TensorRTEngine(Engine):
    """An ard-edge ``.engine`` built for TensorRT; see :func:`ard_edge.engines.open_engine`."""

    backend = "tensorrt"

    def __init__(self, path: str | Path, sidecar: dict[str, Any] | None = None, device: int = 0):
        path = Path(path)
        if not path.is_file():
            raise EngineError(f"engine file not found: {path}")
        sidecar = read_sidecar(path) if sidecar is None else sidecar
        if sidecar["backend"] != "tensorrt":
            raise EngineError(f"{path} was built for {sidecar['backend']}, not TensorRT: open it with open_engine")
        trt = require("tensorrt", "tensorrt")
        cuda = require("pycuda.driver", "tensorrt")
        check_supported(parse_version(trt.__version__))
        from ard_edge.engines.tensorrt._environment import current_environment

        check_compatible(sidecar, current_environment(device), path)

        self.sidecar = sidecar
        self.device = device
        self.last_timings_ms: dict[str, float] = {}
        self._cuda = cuda
        self._lock = threading.Lock()
        self._resources = contextlib.ExitStack()
        self._context_handle = cuda.Device(device).retain_primary_context()
        # Released last: registered first on the one ExitStack that close() unwinds.
        self._resources.callback(self._context_handle.detach)
        self._resources.callback(cuda.Context.pop)
        self._context_handle.push()
        try:
            spec = self._open(trt, cuda, path, sidecar)
        except BaseException:
            self._resources.close()  # frees what was allocated, pops and releases the context
            raise
        cuda.Context.pop()
        super().__init__(path, spec, dict(sidecar["metadata"], precision=sidecar["precision"]))

    def _open(self, trt, cuda, path: Path, sidecar: dict[str, Any]) -> InputSpec:
        from ard_edge.engines.tensorrt.builder import _make_logger

        self._logger = _make_logger(trt)
        runtime = trt.Runtime(self._logger)
        self._resources.callback(self._drop, "_runtime")
        self._runtime = runtime
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            detail = "; ".join(self._logger.errors[-2:])
            raise EngineError(
                f"TensorRT cannot load {path} ({detail}); rebuild it with: {rebuild_command(sidecar, path)}"
            )
        self._resources.callback(self._drop, "_engine")
        self._engine = engine
        context = engine.create_execution_context()
        if context is None:
            raise EngineError(f"TensorRT could not create an execution context for {path} (out of GPU memory?)")
        self._resources.callback(self._drop, "_context")
        self._context = context
        self._stream = cuda.Stream()
        self._resources.callback(self._drop, "_stream")
        self._events = [cuda.Event() for _ in range(4)]  # before h2d, after h2d, after compute, after d2h
        self._resources.callback(self._drop, "_events")

        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if inputs != [INPUT_NAME] or sorted(outputs) != sorted(OUTPUT_NAMES):
            raise EngineError(f"{path}: expected input '{INPUT_NAME}' and outputs {list(OUTPUT_NAMES)}, got {inputs} and {outputs}")
        shape = tuple(engine.get_tensor_shape(INPUT_NAME))
        if len(shape) != 4 or numpy_dtype(engine.get_tensor_dtype(INPUT_NAME)) != np.uint8:
            raise EngineError(f"{path}: input '{INPUT_NAME}' must be uint8 NHWC, got {shape}")
        self._dynamic = shape[0] < 0
        batch = sidecar["batch"]
        min_batch, max_batch = (int(batch["min"]), int(batch["max"])) if self._dynamic else (shape[0], shape[0])
        max_input = (max_batch, *shape[1:])
        if self._dynamic and not context.set_input_shape(INPUT_NAME, max_input):
            raise EngineError(f"{path}: the engine rejects batch {max_batch} recorded in its sidecar")

        self._bindings: dict[str, _Binding] = {}
        self._resources.callback(self._free_bindings)
        for name in [INPUT_NAME, *outputs]:
            max_shape = max_input if name == INPUT_NAME else tuple(context.get_tensor_shape(name))
            if any(d < 0 for d in max_shape):
                raise EngineError(f"{path}: cannot size output '{name}' ({max_shape})")
            binding = _Binding(cuda, name, numpy_dtype(engine.get_tensor_dtype(name)), max_shape)
            self._bindings[name] = binding
            if not context.set_tensor_address(name, int(binding.device)):
                raise EngineError(f"{path}: TensorRT refused the buffer of '{name}'")
        self._outputs = outputs
        log.info("opened %s on %s (batch %d..%d)", path, sidecar["environment"]["gpu_name"], min_batch, max_batch)
        return InputSpec(shape[1], shape[2], shape[3], min_batch=min_batch, max_batch=max_batch)

    def _drop(self, attribute: str) -> None:
        # TensorRT and pycuda objects free their memory when the last reference goes.
        self.__dict__.pop(attribute, None)

    def _free_bindings(self) -> None:
        for binding in self.__dict__.pop("_bindings", {}).values():
            binding.device.free()

    def _infer_impl(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        cuda = self._cuda
        with self._lock:
            self._context_handle.push()
            try:
                return self._run(cuda, frames)
            finally:
                cuda.Context.pop()

    def _run(self, cuda, frames: np.ndarray) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        context, stream, events = self._context, self._stream, self._events
        if self._dynamic and not context.set_input_shape(INPUT_NAME, frames.shape):
            raise EngineError(f"TensorRT rejected input shape {frames.shape}")
        source = self._bindings[INPUT_NAME].view(frames.shape)
        source[...] = frames
        events[0].record(stream)
        cuda.memcpy_htod_async(self._bindings[INPUT_NAME].device, source, stream)
        events[1].record(stream)
        if not context.execute_async_v3(stream_handle=stream.handle):
            raise EngineError(f"TensorRT failed to run a batch of {len(frames)}")
        events[2].record(stream)
        views = {}
        for name in self._outputs:
            views[name] = self._bindings[name].view(tuple(context.get_tensor_shape(name)))
            cuda.memcpy_dtoh_async(views[name], self._bindings[name].device, stream)
        events[3].record(stream)
        stream.synchronize()
        # Copies: the page-locked buffers are overwritten by the next call.
        results = {name: np.array(view) for name, view in views.items()}
        self.last_timings_ms = {
            "host_total_ms": (time.perf_counter() - start) * 1e3,
            "h2d_ms": events[1].time_since(events[0]),
            "compute_ms": events[2].time_since(events[1]),
            "d2h_ms": events[3].time_since(events[2]),
            "gpu_total_ms": events[3].time_since(events[0]),
        }
        return results

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["device"] = self.device
        info["environment"] = self.sidecar["environment"]
        info["build"] = self.sidecar.get("build", {})
        info["last_timings_ms"] = dict(self.last_timings_ms)
        return info

    def _close_impl(self) -> None:
        # Device memory is freed with the context current; the stack then pops and releases it.
        self._context_handle.push()
        self._resources.close()
