"""What differs between TensorRT 8.5, 8.6, 10.x and 11, decided from the version number.

Every decision here is a pure function of a version tuple (or of plain values read from a
tensorrt object), so it is tested on machines without TensorRT. The API facts they encode:

* 8.5 introduced the name-based I/O API used by the runner (``num_io_tensors``,
  ``get_tensor_name/mode/dtype/shape``, ``set_input_shape``, ``set_tensor_address``,
  ``execute_async_v3``); ``IBuilderConfig.set_memory_pool_limit`` is from 8.4. Older versions
  are refused.
* 8.x needs ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH``; 10.0 ignores it (deprecated).
* ``STRONGLY_TYPED`` networks (9.x, used here from 10.0): a tensor's type is what the ONNX
  declares, and the FP16/INT8 builder flags are then rejected. 11 removed weak typing and the
  precision flags (``BuilderFlag.FP16``, ``INT8``, ``OBEY_PRECISION_CONSTRAINTS``): every
  network is strongly typed and the creation flag is kept only for compatibility.
* ``IProgressMonitor`` (build progress callbacks) exists from 10.0.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np

from ard_edge.errors import EngineError

MIN_VERSION = (8, 5)


def parse_version(text: str) -> tuple[int, ...]:
    """``'10.3.0.26'`` -> ``(10, 3, 0, 26)``; pre-release suffixes are ignored."""
    numbers = re.findall(r"\d+", str(text).split("+")[0])
    if not numbers:
        raise EngineError(f"cannot read the TensorRT version {text!r}")
    return tuple(int(n) for n in numbers[:4])


def check_supported(version: tuple[int, ...]) -> None:
    if version[:2] < MIN_VERSION:
        found = ".".join(map(str, version))
        raise EngineError(f"TensorRT {found} is too old: ard-edge needs TensorRT 8.5 or newer (pip install 'ard-edge[tensorrt]')")


@dataclasses.dataclass(frozen=True)
class PrecisionPlan:
    """How one precision is built on one TensorRT version."""

    onnx: str  # which ONNX is parsed: 'fp32' export, 'fp16-mixed' (ard_edge.engines.fp16), 'qdq'
    strongly_typed: bool  # create the network STRONGLY_TYPED (types come from the ONNX)
    builder_flags: tuple[str, ...]  # BuilderFlag names to set
    pin_float32: bool  # weakly typed FP16: pin the prologue/tail layers to float32


def precision_plan(version: tuple[int, ...], precision: str) -> PrecisionPlan:
    """Choose the network typing, ONNX variant and builder flags for ``precision``.

    10 and newer: always a strongly typed network, precision taken from the ONNX (the fp32
    export, the mixed-precision FP16 ONNX, or the Q/DQ graph); it is the only way on 11 and the
    exact way on 10, where the weak-typing flags are deprecated.
    8.5/8.6 have no strong typing: FP16 is the builder flag, with the input prologue and the
    anomaly-map tail pinned to float32 by layer precision + OBEY_PRECISION_CONSTRAINTS; INT8
    parses the Q/DQ graph with the INT8 flag (explicit quantization).
    """
    if precision not in ("fp32", "fp16", "int8"):
        raise EngineError(f"unknown precision {precision!r}")
    onnx = {"fp32": "fp32", "fp16": "fp16-mixed", "int8": "qdq"}[precision]
    if version[0] >= 10:
        return PrecisionPlan(onnx=onnx, strongly_typed=True, builder_flags=(), pin_float32=False)
    if precision == "fp16":
        return PrecisionPlan("fp32", False, ("FP16", "OBEY_PRECISION_CONSTRAINTS"), pin_float32=True)
    if precision == "int8":
        return PrecisionPlan("qdq", False, ("INT8",), pin_float32=False)
    return PrecisionPlan("fp32", False, (), pin_float32=False)


def network_flag_names(version: tuple[int, ...], strongly_typed: bool) -> tuple[str, ...]:
    """``NetworkDefinitionCreationFlag`` members to pass to ``Builder.create_network``."""
    if version[0] < 10:
        return ("EXPLICIT_BATCH",)  # required: implicit batch is deprecated in 8.x
    if version[0] >= 11:
        return ()  # strongly typed is the only mode; the flag is retained but ignored
    return ("STRONGLY_TYPED",) if strongly_typed else ()


def network_flags(trt, version: tuple[int, ...], strongly_typed: bool) -> int:
    """The ``create_network`` bit mask; flags this build does not define are skipped."""
    flags = 0
    for name in network_flag_names(version, strongly_typed):
        member = getattr(trt.NetworkDefinitionCreationFlag, name, None)
        if member is None:
            if name == "EXPLICIT_BATCH":
                raise EngineError(f"TensorRT {trt.__version__} lacks EXPLICIT_BATCH networks")
            continue
        flags |= 1 << int(member)
    return flags


def has_progress_monitor(trt) -> bool:
    return hasattr(trt, "IProgressMonitor")


# TensorRT DataType member name -> numpy dtype. BOOL is one byte per element, like numpy's bool.
_NUMPY_DTYPES = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
}


def numpy_dtype(trt_dtype) -> np.dtype:
    """numpy dtype of a ``tensorrt.DataType`` (or its member name)."""
    name = trt_dtype if isinstance(trt_dtype, str) else getattr(trt_dtype, "name", str(trt_dtype))
    name = name.split(".")[-1].upper()
    if name not in _NUMPY_DTYPES:
        raise EngineError(f"TensorRT data type {name} has no numpy equivalent for engine I/O")
    return np.dtype(_NUMPY_DTYPES[name])


def format_parser_errors(errors: Sequence[tuple[int, str, str]], nodes: Sequence[tuple[str, str]], path: str) -> str:
    """One message for the ONNX parser's errors, each placed on its node.

    ``errors``: (node index or -1, description, error code) as ``ParserError.node()/desc()/code()``
    return them; ``nodes``: (name, op_type) of the parsed graph's nodes, in order.
    """
    lines = []
    for index, desc, code in errors:
        if 0 <= index < len(nodes):
            name, op_type = nodes[index]
            where = f"node {index} '{name}' ({op_type})"
        else:
            where = "graph"
        lines.append(f"{where}: {desc.strip()} [{code}]")
    count = len(lines)
    head = f"TensorRT cannot parse {path} ({count} error{'s' if count != 1 else ''})"
    return head + (": " + "; ".join(lines) if lines else "")


def format_shape(shape: Sequence[int]) -> str:
    return "x".join("?" if int(d) < 0 else str(int(d)) for d in shape)
