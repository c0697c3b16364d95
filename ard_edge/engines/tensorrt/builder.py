"""Build a serialized TensorRT plan from an ard-edge ONNX (TensorRT 8.5 to 11).

Version differences are decided in ``_compat``; this module only talks to tensorrt. It does not
write the engine file: :mod:`ard_edge.deploy.build` does, atomically, with its sidecar.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ard_edge._io import atomic_path
from ard_edge.engines.tensorrt._compat import (
    check_supported,
    format_parser_errors,
    format_shape,
    has_progress_monitor,
    network_flags,
    parse_version,
    precision_plan,
)
from ard_edge.errors import ConfigError, EngineError, require

log = logging.getLogger(__name__)

HEARTBEAT_S = 0.5


@dataclasses.dataclass
class TensorRTBuild:
    plan: bytes  # the serialized engine
    environment: dict[str, Any]  # what the plan is bound to (see sidecar.check_compatible)
    details: dict[str, Any]  # how it was built: typing, flags, pinned layers, timing cache


def _make_logger(trt):
    class _Logger(trt.ILogger):
        """Routes TensorRT's messages to logging and keeps the errors for the exception text."""

        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity, msg):
            if severity in (trt.Logger.INTERNAL_ERROR, trt.Logger.ERROR):
                self.errors.append(msg)
                log.error("TensorRT: %s", msg)
            elif severity == trt.Logger.WARNING:
                log.warning("TensorRT: %s", msg)
            elif severity == trt.Logger.INFO:
                log.info("TensorRT: %s", msg)
            else:
                log.debug("TensorRT: %s", msg)

    return _Logger()


def _make_progress_monitor(trt, progress):
    class _Monitor(trt.IProgressMonitor):
        """Forwards TensorRT 10+ build phases to ``progress``; called from TensorRT's threads."""

        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            try:
                progress.phase_start(phase_name, parent_phase, num_steps)
            except Exception:  # never let a drawing error escape into TensorRT's noexcept callback
                log.exception("progress callback failed")

        def step_complete(self, phase_name, step):
            try:
                return progress.step(phase_name, step) is not False
            except Exception:
                log.exception("progress callback failed")
                return True

        def phase_finish(self, phase_name):
            try:
                progress.phase_finish(phase_name)
            except Exception:
                log.exception("progress callback failed")

    return _Monitor()


@contextlib.contextmanager
def _heartbeat(progress) -> Iterator[None]:
    """Call ``progress.tick(elapsed_s)`` while the block runs (TensorRT without IProgressMonitor)."""
    if progress is None:
        yield
        return
    done = threading.Event()
    start = time.perf_counter()

    def beat():
        while not done.wait(HEARTBEAT_S):
            progress.tick(time.perf_counter() - start)

    thread = threading.Thread(target=beat, name="ard-edge-build-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _pin_float32(trt, network, tail_tensors: set[str], prologue_tensors: set[str]) -> int:
    """Weakly typed FP16 (8.x): run the prologue and the anomaly-map tail in float32.

    Layers are matched by the ONNX tensor names the parser keeps; layers the parser adds inside
    one tail node (unnamed tensors) are found by following tail tensors forward.
    """
    float_types = (trt.DataType.FLOAT, trt.DataType.HALF)
    skip = (trt.LayerType.SHAPE, trt.LayerType.CONSTANT)
    tail_live = set(tail_tensors)
    pinned = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        outputs = [layer.get_output(i) for i in range(layer.num_outputs)]
        inputs = [layer.get_input(i) for i in range(layer.num_inputs)]
        in_tail = any(o.name in tail_tensors for o in outputs) or any(
            t is not None and t.name in tail_live for t in inputs
        )
        in_prologue = any(o.name in prologue_tensors for o in outputs)
        if in_tail:
            tail_live.update(o.name for o in outputs)
        if not (in_tail or in_prologue) or layer.type in skip:
            continue
        if not any(o.dtype in float_types for o in outputs) and not any(
            t is not None and t.dtype in float_types for t in inputs
        ):
            continue  # integer shape arithmetic
        layer.precision = trt.float32
        for i, output in enumerate(outputs):
            if output.dtype in float_types:
                layer.set_output_type(i, trt.float32)
        pinned += 1
    return pinned


def _load_timing_cache(config, path: Path | None) -> str:
    if path is None:
        return "not used"
    data, status = b"", f"new ({path})"
    if path.is_file():
        data, status = path.read_bytes(), f"loaded ({path})"
    try:
        cache = config.create_timing_cache(data)
        accepted = cache is not None and config.set_timing_cache(cache, ignore_mismatch=False)
    except Exception as exc:  # a truncated or foreign file
        log.debug("timing cache rejected: %s", exc)
        accepted = False
    if not accepted:
        log.warning("timing cache %s is unreadable or from another GPU/TensorRT: starting a new one", path)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
        status = f"replaced ({path})"
    return status


def _save_timing_cache(config, path: Path) -> None:
    data = config.get_timing_cache().serialize()
    with atomic_path(path) as tmp:
        tmp.write_bytes(bytes(data))


def build_serialized_engine(
    onnx_path: str | Path,
    *,
    precision: str,
    batch: tuple[int, int, int] | None = None,
    workspace_bytes: int | None = None,
    dla_core: int | None = None,
    timing_cache: str | Path | None = None,
    progress=None,
) -> TensorRTBuild:
    """Parse ``onnx_path`` and build a plan on GPU 0.

    ``batch`` is (min, opt, max) for a dynamic-batch ONNX (one optimization profile) and must be
    None for a fixed one. ``progress`` gets ``phase_start/step/phase_finish`` on TensorRT 10+
    (IProgressMonitor) and ``tick(elapsed_s)`` otherwise.
    """
    from ard_edge.engines.fp16 import convert_to_fp16
    from ard_edge.engines.metadata import load_onnx
    from ard_edge.engines.onnx_graph import split_graph
    from ard_edge.engines.tensorrt._environment import current_environment

    trt = require("tensorrt", "tensorrt")
    version = parse_version(trt.__version__)
    check_supported(version)
    if not hasattr(trt.DataType, "UINT8"):
        raise EngineError(f"TensorRT {trt.__version__} cannot take uint8 frames: install TensorRT 8.5 or newer")
    environment = current_environment(0)
    plan = precision_plan(version, precision)
    onnx_path = Path(onnx_path)
    timing_cache = Path(timing_cache) if timing_cache is not None else None

    model = load_onnx(onnx_path)
    if plan.onnx == "fp16-mixed":
        model = convert_to_fp16(model)
    nodes = [(node.name, node.op_type) for node in model.graph.node]

    logger = _make_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, version, plan.strongly_typed))
    parser = trt.OnnxParser(network, logger)
    try:
        parsed = parser.parse(model.SerializeToString())
    except Exception as exc:
        raise EngineError(f"TensorRT cannot parse {onnx_path}: {exc}") from exc
    if not parsed or parser.num_errors:
        errors = []
        for i in range(parser.num_errors):
            error = parser.get_error(i)
            errors.append((int(error.node()), str(error.desc()), str(error.code())))
        raise EngineError(format_parser_errors(errors, nodes, str(onnx_path)))

    if network.num_inputs != 1:
        raise EngineError(f"{onnx_path}: expected one input 'frames', TensorRT sees {network.num_inputs}")
    frames = network.get_input(0)
    shape = tuple(frames.shape)
    dynamic = shape[0] < 0
    config = builder.create_builder_config()
    if dynamic:
        if batch is None:
            raise ConfigError(f"{onnx_path} has a dynamic batch: give the range with --batch MIN:OPT:MAX")
        profile = builder.create_optimization_profile()
        rest = shape[1:]
        profile.set_shape(frames.name, (batch[0], *rest), (batch[1], *rest), (batch[2], *rest))
        config.add_optimization_profile(profile)
    elif batch is not None and tuple(batch) != (shape[0],) * 3:
        raise ConfigError(f"{onnx_path} has a fixed batch of {shape[0]}: --batch must be {shape[0]}:{shape[0]}:{shape[0]}")

    # TF32 would round the float32 layers' matmuls/convolutions to a 10-bit mantissa: the fp32
    # engine is the reference and the tail must stay exact, so it is off for every precision.
    with contextlib.suppress(AttributeError, TypeError):
        config.clear_flag(trt.BuilderFlag.TF32)
    for name in plan.builder_flags:
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is None:
            raise EngineError(f"TensorRT {trt.__version__} has no BuilderFlag.{name} (needed for {precision})")
        config.set_flag(flag)
    pinned = 0
    if plan.pin_float32:
        parts = split_graph(model)
        tail_tensors = {out for node in model.graph.node if node.name in parts.tail for out in node.output}
        prologue_tensors = {out for node in model.graph.node if node.name in parts.prologue for out in node.output}
        pinned = _pin_float32(trt, network, tail_tensors, prologue_tensors)
    if workspace_bytes is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if dla_core is not None:
        cores = builder.num_DLA_cores
        if not 0 <= dla_core < cores:
            where = "this GPU has no DLA (Jetson AGX/NX and DRIVE have)" if cores == 0 else f"this device has {cores} DLA cores"
            raise ConfigError(f"--dla {dla_core}: {where}")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers DLA cannot run go to the GPU
    cache_status = _load_timing_cache(config, timing_cache)

    monitor = None
    if progress is not None and has_progress_monitor(trt):
        monitor = _make_progress_monitor(trt, progress)  # referenced until the build returns
        config.progress_monitor = monitor
    log.info("building %s %s engine for %s (input %s)", precision, "strongly typed" if plan.strongly_typed else "weakly typed", environment["gpu_name"], format_shape(shape))
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if monitor is None:
            stack.enter_context(_heartbeat(progress))
        try:
            serialized = builder.build_serialized_network(network, config)
        except Exception as exc:
            raise EngineError(f"TensorRT build failed: {exc}") from exc
    build_s = time.perf_counter() - start
    if serialized is None:
        detail = "; ".join(logger.errors[-3:]) or "see the log (-v) for TensorRT's messages"
        raise EngineError(f"TensorRT could not build {onnx_path} as {precision}: {detail}")
    if timing_cache is not None:
        _save_timing_cache(config, timing_cache)
    details = {
        "network": "strongly typed" if plan.strongly_typed else "weakly typed",
        "onnx_variant": plan.onnx,
        "builder_flags": list(plan.builder_flags),
        "float32_pinned_layers": pinned,
        "timing_cache": cache_status,
        "progress": "IProgressMonitor" if monitor is not None else ("heartbeat" if progress is not None else "none"),
        "tensorrt_build_s": round(build_s, 3),
    }
    return TensorRTBuild(plan=bytes(serialized), environment=environment, details=details)
