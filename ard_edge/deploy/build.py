"""``build-engine``: turn an ard-edge ONNX into a deployable ``.engine`` file plus its sidecar.

Three targets, one result: ``open_engine('engines/NAME.engine')`` works wherever the file lands.

* ``tensorrt`` (a GPU with TensorRT and pycuda): a serialized TensorRT plan, FP32, FP16 or INT8
  (see :mod:`ard_edge.engines.tensorrt.builder`).
* ``onnxruntime`` (everywhere else): an ONNX Runtime-optimized ONNX graph, FP32 or the INT8 Q/DQ
  graph. FP16 is refused there: ONNX Runtime's CPU provider has few float16 kernels and wraps the
  others in casts, so an FP16 file would run slower than FP32 on the machines this target is for.
* ``openvino`` (x86 CPUs with OpenVINO installed): OpenVINO IR (``.engine`` is the XML, ``.engine.bin``
  the weights), FP32, bf16, fp16, mixed (the memory bank's search in bf16, the rest FP32) or the
  INT8 Q/DQ graph. Every precision but FP32 is compared with
  FP32 by the accuracy gate on the very engine it builds (see :func:`_build_openvino`).

The engine and its sidecar are written atomically: a failed build leaves neither file, and an
existing engine at ``--out`` stays untouched until the new one is complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ard_edge._io import atomic_open, atomic_path, json_safe, sha256_file
from ard_edge._version import __version__
from ard_edge.calibration import DEFAULT_MAX_AUROC_DROP, DEFAULT_MIN_AGREEMENT, DEFAULT_NUM_IMAGES, calibrate_onnx
from ard_edge.engines import BUILT_SUFFIXES
from ard_edge.engines.base import PRECISIONS, BatchRange, BuildProgress
from ard_edge.engines.metadata import load_onnx, onnx_metadata
from ard_edge.engines.onnx_graph import is_qdq
from ard_edge.engines.sidecar import FORMAT, sidecar_path, validate_sidecar
from ard_edge.errors import ConfigError, EngineError, MissingDependency

log = logging.getLogger(__name__)

TARGETS = ("auto", "tensorrt", "openvino", "onnxruntime")
# What runs bf16 and fp16 here: TensorRT's fp16; bf16, fp16 and mixed (bank search in bf16) on OpenVINO.
_PRECISION_TARGETS = {"fp16": ("tensorrt", "openvino"), "bf16": ("openvino",), "mixed": ("openvino",)}


@dataclasses.dataclass(frozen=True)
class BuildRequest:
    """Everything ``build-engine`` needs; paths as the user gave them."""

    onnx: Path
    out: Path
    precision: str = "fp32"
    target: str = "auto"  # auto | tensorrt | openvino | onnxruntime
    calibration_data: Path | None = None  # good images to calibrate an FP32 ONNX for int8
    batch: BatchRange | None = None  # None: the export's fixed batch, or 1:1:1 if dynamic
    workspace_bytes: int | None = None  # TensorRT workspace limit
    dla_core: int | None = None  # Jetson DLA core, GPU fallback on
    timing_cache: Path | None = None  # TensorRT tactic timing cache, loaded and updated
    max_auroc_drop: float = DEFAULT_MAX_AUROC_DROP  # calibration gate, passed to ard_edge.calibration
    min_agreement: float = DEFAULT_MIN_AGREEMENT  # calibration gate, passed to ard_edge.calibration
    calibration_images: int = DEFAULT_NUM_IMAGES


def tensorrt_probe() -> tuple[dict[str, Any] | None, str]:
    from ard_edge.engines.tensorrt import probe

    return probe()


def openvino_probe() -> tuple[dict[str, Any] | None, str]:
    from ard_edge.engines.openvino import probe

    return probe()


Probe = Callable[[], tuple[dict[str, Any] | None, str]]


def choose_target(requested: str, probe: Probe = tensorrt_probe,
                  openvino: Probe = openvino_probe) -> tuple[str, str]:
    """(target, why): ``auto`` is TensorRT with a GPU, TensorRT and pycuda; else OpenVINO on an x86
    CPU where it is installed; else ONNX Runtime."""
    if requested not in TARGETS:
        raise ConfigError(f"--target {requested!r}: expected one of {', '.join(TARGETS)}")
    if requested == "onnxruntime":
        return "onnxruntime", "requested"
    probes = {"tensorrt": probe, "openvino": openvino}
    if requested in probes:
        environment, reason = probes[requested]()
        if environment is None:
            if "not installed" in reason:
                raise MissingDependency(reason.split()[0], requested)
            raise EngineError(f"--target {requested}: {reason}")
        return requested, f"requested; {reason}"
    reasons = []
    for name, candidate in probes.items():
        environment, reason = candidate()
        if environment is not None:
            return name, "auto: " + "; ".join([*reasons, reason])
        reasons.append(reason)
    return "onnxruntime", "auto: " + "; ".join(reasons)


def onnx_batch(model) -> int | None:
    """The export's fixed batch size, or None when the batch dimension is dynamic."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if not dims:
        raise EngineError("the ONNX input has no shape: is it an ard-edge export?")
    return dims[0].dim_value if dims[0].HasField("dim_value") and dims[0].dim_value > 0 else None


def resolve_batch(requested: BatchRange | None, fixed: int | None, onnx_path: Path) -> BatchRange:
    if fixed is not None:
        if requested is not None and requested.as_tuple() != (fixed,) * 3:
            raise ConfigError(
                f"--batch {requested} does not fit {onnx_path}, exported with a fixed batch of {fixed}: "
                f"pass --batch {fixed} or re-export with --batch dynamic"
            )
        return BatchRange(fixed, fixed, fixed)
    return requested or BatchRange(1, 1, 1)


def check_request(request: BuildRequest) -> None:
    """Raise ConfigError for a request that cannot work, before anything is loaded or probed."""
    if request.precision not in PRECISIONS:
        raise ConfigError(f"--precision {request.precision!r}: expected one of {', '.join(PRECISIONS)}")
    if request.target not in TARGETS:
        raise ConfigError(f"--target {request.target!r}: expected one of {', '.join(TARGETS)}")
    if not Path(request.onnx).is_file():
        raise ConfigError(f"--onnx {request.onnx}: no such file")
    if Path(request.out).suffix.lower() not in BUILT_SUFFIXES:
        raise ConfigError(f"--out {request.out}: engine files end in .engine or .plan (open_engine dispatches on it)")
    if Path(request.out).resolve() == Path(request.onnx).resolve():
        raise ConfigError("--out must not overwrite the --onnx model")
    if request.workspace_bytes is not None and request.workspace_bytes < 1:
        raise ConfigError(f"--workspace {request.workspace_bytes}: must be at least 1 byte")
    if request.dla_core is not None:
        if request.dla_core < 0:
            raise ConfigError(f"--dla {request.dla_core}: DLA cores are numbered from 0")
        if request.precision == "fp32":
            raise ConfigError("--dla needs --precision fp16 or int8: DLA cores do not run float32")
    if request.calibration_data is not None and not Path(request.calibration_data).is_dir():
        raise ConfigError(f"--calibration-data {request.calibration_data}: no such directory")


def _calibration_progress(progress: BuildProgress) -> Callable[[str, int, int], None]:
    """Adapt calibration's ``progress(stage, done, total)`` to BuildProgress phases."""
    started: set[str] = set()

    def report(stage: str, done: int, total: int) -> None:
        name = stage if stage.startswith("gate") else f"INT8 {stage}"  # a bf16 gate is no INT8 step
        if name not in started:
            started.add(name)
            progress.phase_start(name, None, total)
        progress.step(name, done - 1)
        if done >= total:
            progress.phase_finish(name)

    return report


def _calibrate(
    request: BuildRequest, target: str, workdir: Path, progress: BuildProgress | None
) -> tuple[Path, dict[str, Any]]:
    out = workdir / "calibrated_qdq.onnx"
    report = calibrate_onnx(
        request.onnx,
        request.calibration_data,
        out,
        profile="tensorrt" if target == "tensorrt" else "cpu",
        num_images=request.calibration_images,
        max_auroc_drop=request.max_auroc_drop,
        min_agreement=request.min_agreement,
        progress=None if progress is None else _calibration_progress(progress),
    )
    if not out.is_file():
        raise EngineError(f"calibration did not write {out}")
    return out, report


def _build_openvino(request: BuildRequest, source: Path, engine_tmp: Path, stack: contextlib.ExitStack,
                    batch: BatchRange, metadata: dict[str, Any], progress: BuildProgress | None) -> tuple[dict, dict]:
    """Convert ``source`` to IR in ``engine_tmp`` (weights beside it), gate it, return (environment, sidecar sections).

    The gate runs the IR compiled exactly as ``open_engine`` will compile it, against ONNX
    Runtime on the FP32 export: OpenVINO's bf16 and its int8 kernels are what is gated, not
    ONNX Runtime's. A user's Q/DQ file is gated against itself on ONNX Runtime (its FP32 parent
    is not known here), which ``ard-edge calibrate`` gated against FP32 already.
    """
    from ard_edge.calibration import gate_engine
    from ard_edge.engines.openvino import INFERENCE_PRECISIONS, OpenVINOEngine, weights_path
    from ard_edge.engines.openvino.builder import convert_onnx

    weights_tmp = stack.enter_context(atomic_path(weights_path(request.out)))
    environment = convert_onnx(source, engine_tmp, weights_tmp, batch, metadata, progress,
                               lower_bank=request.precision == "mixed")
    runs = INFERENCE_PRECISIONS[request.precision]
    sections: dict[str, Any] = {
        "openvino": {"inference_precision": runs, "device": environment["device"]},
        "weights": {"file": weights_path(request.out).name, "bytes": weights_tmp.stat().st_size,
                    "sha256": sha256_file(weights_tmp)},
    }

    def open_candidate() -> OpenVINOEngine:
        return OpenVINOEngine(engine_tmp, runs, metadata=metadata, weights=weights_tmp)

    with open_candidate() as engine:  # it must compile and run before anything else
        engine.warmup(1, batch.min)
        sections["openvino"]["runtime_precisions"] = engine.runtime_precisions
    lowered = environment.get("lowered", {}).get("memory_bank_search")
    if lowered and not sections["openvino"]["runtime_precisions"].get(lowered):
        raise EngineError(f"this CPU runs the memory bank's search in f32, not {lowered} (no {lowered} units):"
                          " --precision mixed would gain nothing; build --precision fp32")
    if request.precision != "fp32":
        sections["gate"] = gate_engine(
            request.onnx, open_candidate, request.calibration_data, request.precision,
            num_images=request.calibration_images, max_auroc_drop=request.max_auroc_drop,
            min_agreement=request.min_agreement, progress=None if progress is None else _calibration_progress(progress),
        )
    return environment, sections


def _json_value(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    if hasattr(value, "tolist"):  # numpy array
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def build_engine(
    request: BuildRequest,
    progress: BuildProgress | None = None,
    probe: Probe = tensorrt_probe,
    target_reason: str | None = None,
) -> dict[str, Any]:
    """Build ``request.out`` and its sidecar; return the sidecar.

    ``target_reason``: the caller already resolved ``request.target`` with :func:`choose_target`
    (and says why); otherwise it is resolved here.

    Raises ConfigError for option combinations that cannot work, EngineError when a backend
    fails, CalibrationError when INT8 calibration fails (AccuracyGateRefused, exit status 3, when
    its accuracy gate refuses the model).
    """
    check_request(request)
    if target_reason is not None and request.target != "auto":
        target, reason = request.target, target_reason
    else:
        target, reason = choose_target(request.target, probe)
    onnx_path, out = Path(request.onnx), Path(request.out)
    model = load_onnx(onnx_path, ConfigError)
    metadata = onnx_metadata(model, onnx_path)
    fixed_batch = onnx_batch(model)
    batch = resolve_batch(request.batch, fixed_batch, onnx_path)
    quantized = is_qdq(model)
    del model
    precision = request.precision
    if precision == "fp16" and target == "onnxruntime":
        raise ConfigError(
            "--precision fp16 needs the TensorRT or OpenVINO target: ONNX Runtime's "
            "CPU provider runs float16 mostly through casts, slower than fp32; build fp32 or int8 here"
        )
    if target not in _PRECISION_TARGETS.get(precision, (target,)):
        raise ConfigError(f"--precision {precision} needs --target {' or '.join(_PRECISION_TARGETS[precision])}")
    if target == "openvino" and precision != "fp32" and request.calibration_data is None:
        raise ConfigError(f"--precision {precision} changes the model's arithmetic: pass --calibration-data DIR"
                          " (good images, and test/ defects when there are) so the accuracy gate compares it with fp32")
    if quantized and precision != "int8":
        raise ConfigError(f"{onnx_path} is quantized (QuantizeLinear/DequantizeLinear): build it with --precision int8")
    if precision == "int8" and not quantized and request.calibration_data is None:
        raise ConfigError(
            f"--precision int8: {onnx_path} is float32; pass --calibration-data DIR (good images) to "
            f"calibrate it, or give an ONNX quantized by ard-edge calibrate"
        )
    if request.calibration_data is not None and (precision != "int8" or quantized) and target != "openvino":
        log.warning("--calibration-data is only used to calibrate an fp32 ONNX for int8: ignored")
    if target in ("onnxruntime", "openvino"):
        for name, option in (("workspace_bytes", "workspace"), ("dla_core", "dla"), ("timing_cache", "timing-cache")):
            if getattr(request, name) is not None:
                log.warning("--%s only applies to TensorRT: ignored for the %s target", option, target)

    start = time.perf_counter()
    calibration = None
    details: dict[str, Any] = {}
    extra: dict[str, Any] = {}  # backend-specific sidecar sections
    with contextlib.ExitStack() as stack:
        source = onnx_path
        if precision == "int8" and not quantized:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ard-edge-calib-")))
            source, calibration = _calibrate(request, target, workdir, progress)
            with contextlib.suppress(EngineError):
                metadata = onnx_metadata(load_onnx(source), source)
        # The sidecar enters the stack first so the engine is renamed into place before it (LIFO);
        # an error anywhere in this block removes both temporary files and renames neither.
        sidecar_file = stack.enter_context(atomic_open(sidecar_path(out)))
        engine_tmp = stack.enter_context(atomic_path(out))
        if target == "tensorrt":
            from ard_edge.engines.tensorrt import build_serialized_engine

            built = build_serialized_engine(
                source,
                precision=precision,
                batch=batch.as_tuple() if fixed_batch is None else None,
                workspace_bytes=request.workspace_bytes,
                dla_core=request.dla_core,
                timing_cache=request.timing_cache,
                progress=progress,
            )
            engine_tmp.write_bytes(built.plan)
            environment, details = built.environment, built.details
        elif target == "openvino":
            environment, extra = _build_openvino(request, source, engine_tmp, stack, batch,
                                                 dict(metadata, precision=precision), progress)
        else:
            from ard_edge.engines.onnxruntime.builder import optimize_onnx

            environment = optimize_onnx(source, engine_tmp, batch, progress)
        build_s = time.perf_counter() - start
        sidecar = {
            "format": FORMAT,
            "backend": target,
            "precision": precision,
            "batch": dataclasses.asdict(batch),
            "onnx": {"path": str(onnx_path), "sha256": sha256_file(onnx_path)},
            "engine": {"bytes": engine_tmp.stat().st_size, "sha256": sha256_file(engine_tmp)},
            "environment": environment,
            "build": {
                "time_s": round(build_s, 3),
                "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "ard_edge_version": __version__,
                "target_reason": reason,
                **details,
            },
            "options": {
                "calibration_data": str(request.calibration_data) if calibration or "gate" in extra else None,
                "workspace": request.workspace_bytes if target == "tensorrt" else None,
                "dla_core": request.dla_core if target == "tensorrt" else None,
                "timing_cache": str(request.timing_cache) if target == "tensorrt" and request.timing_cache else None,
            },
            "metadata": dict(metadata, precision=precision),
            "calibration": json.loads(json.dumps(calibration, default=_json_value)),
            **json.loads(json.dumps(extra, default=_json_value)),
        }
        validate_sidecar(sidecar, sidecar_path(out))
        # default=: the calibration report may hold numpy scalars.
        json.dump(json_safe(sidecar), sidecar_file, indent=2, sort_keys=True, default=_json_value, allow_nan=False)
        sidecar_file.write("\n")
    log.info("wrote %s (%s, %s, batch %s) in %.1f s", out, target, precision, batch, build_s)
    return sidecar
