"""The JSON sidecar written beside every built engine (``<engine path>.json``).

A TensorRT plan is tied to the TensorRT version and the GPU it was built on, and says little
about itself; the sidecar records what built it (backend, versions, GPU, precision, batch
range, the source ONNX's sha256, build options) and the model's ard-edge metadata, so
``open_engine`` can dispatch on the backend and refuse a plan from another machine with the
exact command that rebuilds it.

The compatibility check is a pure function of the sidecar and a description of the current
environment (see :func:`check_compatible`), so it is tested without a GPU.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from ard_edge._io import sha256_file, write_json
from ard_edge.engines.base import PRECISIONS
from ard_edge.errors import EngineError

FORMAT = "ard-edge-engine/1"
SUFFIX = ".json"
BACKENDS = ("tensorrt", "onnxruntime", "openvino")

# The metadata keys that decide verdicts; a sidecar must agree with its graph on each.
BOUND_METADATA = ("threshold", "score_stats", "input", "model", "checkpoint_sha256")
_REQUIRED = ("format", "backend", "precision", "batch", "onnx", "environment", "metadata")
# What a TensorRT plan is bound to: a plan from another TensorRT build or another GPU model
# either fails to deserialize or runs kernels tuned for different hardware.
_TENSORRT_ENVIRONMENT = ("tensorrt_version", "gpu_name", "compute_capability")


def sidecar_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + SUFFIX)


def write_sidecar(engine_path: str | Path, sidecar: dict[str, Any]) -> Path:
    """Validate and write ``sidecar`` atomically beside ``engine_path``; return its path."""
    path = sidecar_path(engine_path)
    validate_sidecar(sidecar, path)
    write_json(path, sidecar)
    return path


def read_sidecar(engine_path: str | Path) -> dict[str, Any]:
    """The sidecar of ``engine_path``, checked for shape and for belonging to that engine file."""
    engine_path = Path(engine_path)
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise EngineError(
            f"{engine_path} has no sidecar {path.name}: engines are opened through the JSON that "
            f"ard-edge build-engine writes beside them; rebuild it with ard-edge build-engine"
        )
    try:
        sidecar = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineError(f"{path} is not a readable engine sidecar ({exc})") from exc
    validate_sidecar(sidecar, path)
    _check_engine_file(sidecar, engine_path, path)
    return sidecar


def _check_engine_file(sidecar: dict[str, Any], engine_path: Path, path: Path) -> None:
    """The engine file must be the one the sidecar was written for: same size, same sha256.

    Hashing costs a read of the file, little next to deserializing it, and it catches an engine
    swapped for another model's engine of the same size (which would run under this threshold).
    """
    mismatch = _file_mismatch(sidecar.get("engine", {}), engine_path)
    weights = sidecar.get("weights")  # an OpenVINO IR's weights file
    if mismatch is None and weights:
        mismatch = _file_mismatch(weights, engine_path.with_name(weights["file"]))
    if mismatch:
        raise EngineError(f"{path} {mismatch}: the two do not belong together;"
                          f" rebuild with: {rebuild_command(sidecar, engine_path)}")


def _file_mismatch(recorded: dict[str, Any], file: Path) -> str | None:
    """How ``file`` differs from the size and sha256 the sidecar recorded for it, or None."""
    if not file.is_file():
        return f"describes {file.name}, which is missing"
    if recorded.get("bytes") is not None and file.stat().st_size != recorded["bytes"]:
        return f"describes a {recorded['bytes']}-byte {file.name} but {file} has {file.stat().st_size} bytes"
    if recorded.get("sha256") is not None and sha256_file(file) != recorded["sha256"]:
        return f"records sha256 {recorded['sha256'][:12]}... for {file.name} but {file} hashes differently"
    return None


def check_metadata_agrees(recorded: dict[str, Any], embedded: dict[str, Any], path: str | Path) -> None:
    """Refuse a sidecar whose model metadata disagrees with the metadata inside the graph it describes."""
    differing = [key for key in BOUND_METADATA if recorded.get(key) != embedded.get(key)]
    if differing:
        raise EngineError(f"{path}: the sidecar's metadata disagrees with the graph's on {', '.join(differing)}:"
                          " the engine and its sidecar come from different builds; rebuild with ard-edge build-engine")


def validate_sidecar(sidecar: Any, path: str | Path) -> None:
    """Raise EngineError naming ``path`` unless ``sidecar`` has every field a reader relies on."""
    if not isinstance(sidecar, dict):
        raise EngineError(f"{path} is not an engine sidecar (expected a JSON object)")
    missing = [key for key in _REQUIRED if key not in sidecar]
    if missing:
        raise EngineError(f"{path} is not an ard-edge engine sidecar (missing {', '.join(missing)})")
    if sidecar["format"] != FORMAT:
        raise EngineError(f"{path} has sidecar format {sidecar['format']!r}, this ard-edge reads {FORMAT!r}")
    if sidecar["backend"] not in BACKENDS:
        raise EngineError(f"{path}: unknown backend {sidecar['backend']!r} (expected one of {', '.join(BACKENDS)})")
    if sidecar["precision"] not in PRECISIONS:
        raise EngineError(f"{path}: unknown precision {sidecar['precision']!r}")
    if not isinstance(sidecar["metadata"], dict):
        raise EngineError(f"{path}: 'metadata' must be the model's ard-edge metadata object")
    for key in ("batch", "environment", "engine"):
        if not isinstance(sidecar.get(key, {}), dict):
            raise EngineError(f"{path}: '{key}' must be a JSON object")
    if sidecar["backend"] == "tensorrt":
        missing = [key for key in _TENSORRT_ENVIRONMENT if not sidecar["environment"].get(key)]
        if missing:
            raise EngineError(f"{path}: a TensorRT sidecar must record {', '.join(missing)}")


def rebuild_command(sidecar: dict[str, Any], engine_path: str | Path) -> str:
    """The ``ard-edge build-engine`` command line that rebuilds this engine on this machine."""
    options = sidecar.get("options", {})
    batch = sidecar.get("batch", {})
    parts = [
        "ard-edge", "build-engine",
        "--onnx", str(sidecar.get("onnx", {}).get("path", "MODEL.onnx")),
        "--precision", sidecar["precision"],
        "--out", str(engine_path),
        "--target", sidecar["backend"],
    ]
    if batch:
        parts += ["--batch", f"{batch['min']}:{batch['opt']}:{batch['max']}"]
    if options.get("calibration_data"):
        parts += ["--calibration-data", str(options["calibration_data"])]
    if options.get("workspace"):
        parts += ["--workspace", str(options["workspace"])]
    if options.get("dla_core") is not None:
        parts += ["--dla", str(options["dla_core"])]
    if options.get("timing_cache"):
        parts += ["--timing-cache", str(options["timing_cache"])]
    return shlex.join(parts)


def check_compatible(sidecar: dict[str, Any], current: dict[str, Any], engine_path: str | Path) -> None:
    """Raise EngineError when a TensorRT plan was built for another TensorRT version or GPU.

    ``current`` describes this machine with the keys of ``sidecar['environment']``
    (``tensorrt_version``, ``gpu_name``, ``compute_capability``). ONNX Runtime engines run
    anywhere, so they always pass.
    """
    if sidecar["backend"] != "tensorrt":
        return
    built = sidecar["environment"]
    hint = f"rebuild it on this machine with: {rebuild_command(sidecar, engine_path)}"
    if str(built["tensorrt_version"]) != str(current.get("tensorrt_version")):
        raise EngineError(
            f"{engine_path} was built with TensorRT {built['tensorrt_version']} but this machine "
            f"has TensorRT {current.get('tensorrt_version')}; {hint}"
        )
    built_gpu = (str(built["gpu_name"]), str(built["compute_capability"]))
    here_gpu = (str(current.get("gpu_name")), str(current.get("compute_capability")))
    if built_gpu != here_gpu:
        raise EngineError(
            f"{engine_path} was built for {built_gpu[0]} (compute capability {built_gpu[1]}) but "
            f"this machine has {here_gpu[0]} (compute capability {here_gpu[1]}); {hint}"
        )
