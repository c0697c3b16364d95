"""Engines: one interface (open, describe, infer, warm up, close) over every backend.

Backends import their heavy libraries lazily: ``open_engine`` picks one from the file.
"""

from __future__ import annotations

from pathlib import Path

from ard_edge.engines.base import OUTPUT_NAMES, Engine, InferenceResult, InputSpec
from ard_edge.errors import EngineError

# Files build-engine writes (a sidecar beside each says which backend runs them).
BUILT_SUFFIXES = (".engine", ".plan")
ENGINE_SUFFIXES = (".onnx", ".ckpt", *BUILT_SUFFIXES)


def open_engine(path: str | Path, threads: int | None = None, **options) -> Engine:
    """Open ``path`` with the backend its type calls for.

    ``.onnx`` -> ONNX Runtime; ``.ckpt`` -> PyTorch (``channels=`` 1 or 3);
    ``.engine``/``.plan`` -> the backend named in its sidecar JSON (TensorRT, OpenVINO or ONNX Runtime).
    ``threads`` caps the CPU threads of a CPU backend (a GPU engine ignores it): on a small
    machine, leaving a core to capture and preprocessing keeps a camera pipeline fed.
    ``triton://host:port/model`` -> the model served by a Triton server (``threads`` ignored).
    """
    from ard_edge.engines.triton import is_triton_url

    if is_triton_url(path):
        from ard_edge.engines.triton.runner import TritonEngine

        return TritonEngine(str(path), **options)
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"engine file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from ard_edge.engines.onnxruntime.runner import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path, intra_op_threads=threads, **options)
    if suffix == ".ckpt":
        from ard_edge.engines.torch_engine import TorchEngine

        return TorchEngine(path, threads=threads, **options)
    if suffix in BUILT_SUFFIXES:
        return _open_built_engine(path, threads, **options)
    raise EngineError(f"{path}: unknown engine type '{suffix}' (expected one of {', '.join(ENGINE_SUFFIXES)})")


def _open_built_engine(path: Path, threads: int | None, **options) -> Engine:
    from ard_edge.engines.sidecar import check_metadata_agrees, read_sidecar, sidecar_path

    sidecar = read_sidecar(path)
    if sidecar["backend"] == "onnxruntime":
        from ard_edge.engines.onnxruntime.runner import OnnxRuntimeEngine

        engine = OnnxRuntimeEngine(path, metadata=sidecar["metadata"], intra_op_threads=threads, **options)
        if engine.embedded_metadata is not None:
            try:
                check_metadata_agrees(sidecar["metadata"], engine.embedded_metadata, sidecar_path(path))
            except EngineError:
                engine.close()
                raise
        return engine
    if sidecar["backend"] == "openvino":
        return _open_openvino(path, sidecar, threads, **options)
    from ard_edge.engines.tensorrt import TensorRTEngine

    return TensorRTEngine(path, sidecar=sidecar, **options)


def _open_openvino(path: Path, sidecar: dict, threads: int | None, **options) -> Engine:
    """The IR compiled with the precision its sidecar was gated at (``hint=``/``device=`` in ``options``)."""
    from ard_edge.engines.openvino import OpenVINOEngine, check_openvino_version
    from ard_edge.engines.sidecar import check_metadata_agrees, sidecar_path

    recorded = sidecar.get("openvino") or {}
    if "inference_precision" not in recorded:
        raise EngineError(f"{sidecar_path(path)}: an OpenVINO sidecar must record openvino.inference_precision;"
                          " rebuild with ard-edge build-engine --target openvino")
    check_openvino_version(sidecar, path)
    engine = OpenVINOEngine(path, recorded["inference_precision"], metadata=sidecar["metadata"],
                            precision=sidecar["precision"], threads=threads,
                            **{"device": recorded.get("device", "CPU"), **options})
    try:
        if engine.embedded_metadata is not None:
            check_metadata_agrees(sidecar["metadata"], engine.embedded_metadata, sidecar_path(path))
    except EngineError:
        engine.close()
        raise
    return engine


__all__ = ["BUILT_SUFFIXES", "ENGINE_SUFFIXES", "Engine", "InferenceResult", "InputSpec", "OUTPUT_NAMES", "open_engine"]
