"""The ard-edge metadata carried inside ONNX files (``metadata_props``) and engine sidecars.

Also the one way an ONNX file is loaded (:func:`load_onnx`) and the one way a written graph is
stamped with its metadata and checked (:func:`stamp_metadata`), for the exporter, the INT8
calibration and the FP16 conversion alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ard_edge._version import __version__
from ard_edge.errors import ArdEdgeError, EngineError

METADATA_KEY = "ard_edge"


def load_onnx(path: str | Path, error: type[ArdEdgeError] = EngineError):
    """The ONNX ModelProto at ``path``, or ``error`` saying the file is not a readable model."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ValidationError...
        raise error(f"{path} is not a readable ONNX model ({exc})") from exc


def set_onnx_metadata(proto, metadata: dict[str, Any]) -> None:
    """Replace the ard-edge entry of an in-memory ONNX ModelProto."""
    for index in reversed(range(len(proto.metadata_props))):
        if proto.metadata_props[index].key == METADATA_KEY:
            del proto.metadata_props[index]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata, sort_keys=True)


def stamp_metadata(proto, metadata: dict[str, Any], error: type[ArdEdgeError], what: str,
                   full_check: bool = False) -> None:
    """Put ``metadata`` and ard-edge as producer into ``proto``, then run onnx.checker.

    Raises:
        error: ``what`` (e.g. "the quantized graph") fails the checker.
    """
    import onnx

    set_onnx_metadata(proto, metadata)
    proto.producer_name, proto.producer_version = "ard-edge", __version__
    try:
        onnx.checker.check_model(proto, full_check=full_check)
    except onnx.checker.ValidationError as exc:
        raise error(f"{what} fails onnx.checker: {exc}") from exc


def metadata_from_props(props: Mapping[str, str], path: str | Path = "model") -> dict[str, Any]:
    """The ard-edge entry of a model's string metadata (ONNX ``metadata_props``, ORT's custom map)."""
    if METADATA_KEY not in props:
        raise EngineError(f"{path} is an ONNX model but not an ard-edge export (no '{METADATA_KEY}' metadata)")
    try:
        metadata = json.loads(props[METADATA_KEY])
    except ValueError as exc:
        raise EngineError(f"{path}: its '{METADATA_KEY}' metadata is not valid JSON ({exc}): re-export it") from exc
    if not isinstance(metadata, dict):
        raise EngineError(f"{path}: its '{METADATA_KEY}' metadata is not a JSON object: re-export it")
    return metadata


def onnx_metadata(proto, path: str | Path = "model") -> dict[str, Any]:
    return metadata_from_props({p.key: p.value for p in proto.metadata_props}, path)


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The ard-edge metadata of an exported, quantized or optimized ONNX file."""
    return onnx_metadata(load_onnx(path), path)
