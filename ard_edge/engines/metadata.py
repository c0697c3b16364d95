"""The ard-edge metadata carried inside ONNX files (``metadata_props``) and engine sidecars."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ard_edge.errors import EngineError

METADATA_KEY = "ard_edge"


def set_onnx_metadata(proto, metadata: dict[str, Any]) -> None:
    """Replace the ard-edge entry of an in-memory ONNX ModelProto."""
    for index in reversed(range(len(proto.metadata_props))):
        if proto.metadata_props[index].key == METADATA_KEY:
            del proto.metadata_props[index]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata, sort_keys=True)


def onnx_metadata(proto, path: str | Path = "model") -> dict[str, Any]:
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise EngineError(f"{path} is an ONNX model but not an ard-edge export (no '{METADATA_KEY}' metadata)")
    return json.loads(props[METADATA_KEY])


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The ard-edge metadata of an exported, quantized or optimized ONNX file."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise EngineError(f"{path} is not a readable ONNX model ({exc})") from exc
    return onnx_metadata(proto, path)
