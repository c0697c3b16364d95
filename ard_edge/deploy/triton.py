"""``build-engine --target triton``: an ard-edge ONNX as a Triton Inference Server model repository.

Writes ``OUT/NAME/config.pbtxt`` and ``OUT/NAME/<version>/model.onnx`` (the onnxruntime backend)
or ``model.plan`` (the tensorrt backend, built on a machine with a GPU and TensorRT). The config
names the fused graph's input and outputs with their dtypes and dims, enables dynamic batching
across clients (preferred sizes and queue delay from ``--batch`` and ``--max-wait-ms``), sets the
instance groups, and carries the model's ard-edge metadata as the ``ard_edge`` parameter, which
:class:`~ard_edge.engines.triton.runner.TritonEngine` reads back from the server.

Each build adds a version folder, written under a temporary name and renamed when complete, so
a version a server may be serving is never overwritten.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ard_edge._io import atomic_open, ensure_folder
from ard_edge.deploy.build import BuildRequest, _calibrate, onnx_batch, tensorrt_probe
from ard_edge.engines.base import BatchRange
from ard_edge.engines.metadata import METADATA_KEY, load_onnx, onnx_metadata
from ard_edge.engines.onnx_graph import is_qdq
from ard_edge.errors import ConfigError, EngineError

log = logging.getLogger(__name__)

KINDS = ("cpu", "gpu")
DEFAULT_MAX_WAIT_MS = 2.0
CONFIG_NAME = "config.pbtxt"
# ONNX TensorProto element types -> Triton data types (the ones an ard-edge graph uses).
_TRITON_TYPES = {1: "TYPE_FP32", 2: "TYPE_UINT8", 9: "TYPE_BOOL", 10: "TYPE_FP16", 7: "TYPE_INT64"}
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


@dataclasses.dataclass(frozen=True)
class TritonOptions:
    """What the Triton target adds to a build request."""

    name: str = "ard"
    instances: int = 1
    kind: str = "cpu"  # cpu | gpu: the instance group's kind; gpu with TensorRT here writes a plan
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS  # dynamic batcher's queue delay

    def validate(self) -> None:
        if not self.name or not set(self.name) <= _NAME_CHARS or self.name.startswith("."):
            raise ConfigError(f"--name {self.name!r}: a model name of letters, digits, '_', '-' and '.'")
        if self.instances < 1:
            raise ConfigError(f"--instances {self.instances}: at least 1")
        if self.kind not in KINDS:
            raise ConfigError(f"--kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if not 0 <= self.max_wait_ms <= 60_000:
            raise ConfigError(f"--max-wait-ms {self.max_wait_ms}: between 0 and 60000")


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One input or output as config.pbtxt states it: dims without the batch dimension, -1 where the graph leaves a dim open."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None  # per-item scalars: dims [1] on the wire, shape [] in the graph


def graph_tensors(model) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The inputs and outputs of an ONNX graph with a dynamic batch dimension, in Triton's terms."""
    def spec(value) -> TensorSpec:
        tensor = value.type.tensor_type
        if tensor.elem_type not in _TRITON_TYPES:
            raise EngineError(f"{value.name}: ONNX element type {tensor.elem_type} has no Triton type here")
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor.shape.dim[1:])
        if not dims:
            return TensorSpec(value.name, _TRITON_TYPES[tensor.elem_type], (1,), reshape=())
        return TensorSpec(value.name, _TRITON_TYPES[tensor.elem_type], dims)

    return [spec(v) for v in model.graph.input], [spec(v) for v in model.graph.output]


def preferred_batch_sizes(batch: BatchRange) -> list[int]:
    """The dynamic batcher's preferred sizes: the range's optimum and maximum."""
    return sorted({batch.opt, batch.max})


def render_config(name: str, backend: str, batch: BatchRange, options: TritonOptions,
                  inputs: list[TensorSpec], outputs: list[TensorSpec], metadata: dict[str, Any]) -> str:
    """config.pbtxt text (protobuf text format of Triton's ModelConfig)."""
    lines = [f"name: {_quote(name)}", f"backend: {_quote(backend)}", f"max_batch_size: {batch.max}"]
    for field, tensors in (("input", inputs), ("output", outputs)):
        for tensor in tensors:
            lines.append(f"{field} {{")
            lines.append(f"  name: {_quote(tensor.name)}")
            lines.append(f"  data_type: {tensor.data_type}")
            lines.append(f"  dims: [{', '.join(str(d) for d in tensor.dims)}]")
            if tensor.reshape is not None:
                lines.append(f"  reshape: {{ shape: [{', '.join(str(d) for d in tensor.reshape)}] }}")
            lines.append("}")
    delay_us = round(options.max_wait_ms * 1000)
    sizes = ", ".join(str(size) for size in preferred_batch_sizes(batch))
    lines += [
        "dynamic_batching {",
        f"  preferred_batch_size: [{sizes}]",
        f"  max_queue_delay_microseconds: {delay_us}",
        "}",
        "instance_group {",
        f"  count: {options.instances}",
        f"  kind: KIND_{options.kind.upper()}",
        "}",
        "parameters {",
        f"  key: {_quote(METADATA_KEY)}",
        f"  value: {{ string_value: {_quote(json.dumps(metadata, sort_keys=True))} }}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    """A protobuf text-format string literal (JSON's escapes are a subset it reads)."""
    return json.dumps(text, ensure_ascii=True)


def next_version(model_dir: Path) -> int:
    """One above the highest version folder, so a version in service is never replaced."""
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()] if model_dir.is_dir() else []
    return max(versions, default=0) + 1


def _wants_tensorrt(options: TritonOptions, probe=tensorrt_probe) -> tuple[bool, str]:
    if options.kind != "gpu":
        return False, "--kind cpu: the onnxruntime backend"
    environment, reason = probe()
    if environment is None:
        return False, f"--kind gpu but no TensorRT here ({reason}): the onnxruntime backend, on the server's GPU"
    return True, f"--kind gpu: the tensorrt backend ({reason})"


def build_triton_repository(request: BuildRequest, options: TritonOptions, progress=None,
                            probe=tensorrt_probe) -> dict[str, Any]:
    """Write a new version of ``options.name`` into the repository ``request.out``; return what was written.

    Raises ConfigError for what cannot work (fixed-batch export, fp16 without TensorRT...),
    EngineError or CalibrationError when building fails; nothing half-written stays behind.
    """
    options.validate()
    onnx_path, repository = Path(request.onnx), Path(request.out)
    if not onnx_path.is_file():
        raise ConfigError(f"--onnx {onnx_path}: no such file")
    if repository.is_file():
        raise ConfigError(f"--out {repository}: a Triton model repository is a folder, not a file")
    model = load_onnx(onnx_path, ConfigError)
    metadata = onnx_metadata(model, onnx_path)
    if onnx_batch(model) is not None:
        raise ConfigError(f"{onnx_path} has a fixed batch: Triton batches across clients, so re-export it "
                          "with ard-edge export --batch dynamic")
    quantized = is_qdq(model)
    inputs, outputs = graph_tensors(model)
    del model
    tensorrt, reason = _wants_tensorrt(options, probe)
    precision = request.precision
    if precision == "fp16" and not tensorrt:
        raise ConfigError("--precision fp16 needs TensorRT (--kind gpu on a machine with a GPU and TensorRT)")
    if quantized and precision != "int8":
        raise ConfigError(f"{onnx_path} is quantized (QuantizeLinear/DequantizeLinear): build it with --precision int8")
    if precision == "int8" and not quantized and request.calibration_data is None:
        raise ConfigError(f"--precision int8: {onnx_path} is float32; int8 needs a quantized ONNX or --calibration-data DIR")
    batch = request.batch or BatchRange(1, 4, 8)
    model_dir = ensure_folder(repository / options.name)
    version = next_version(model_dir)
    filename = "model.plan" if tensorrt else "model.onnx"
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".ard-edge-triton-", dir=model_dir)))
        source = onnx_path
        if precision == "int8" and not quantized:
            source, _ = _calibrate(request, "tensorrt" if tensorrt else "onnxruntime", workdir, progress)
            metadata = onnx_metadata(load_onnx(source), source)
        staged = workdir / str(version)
        staged.mkdir()
        if tensorrt:
            from ard_edge.engines.tensorrt import build_serialized_engine

            built = build_serialized_engine(source, precision=precision, batch=batch.as_tuple(),
                                            workspace_bytes=request.workspace_bytes, dla_core=request.dla_core,
                                            timing_cache=request.timing_cache, progress=progress)
            (staged / filename).write_bytes(built.plan)
        else:
            shutil.copyfile(source, staged / filename)
        metadata = dict(metadata, precision=precision)
        backend = "tensorrt" if tensorrt else "onnxruntime"
        text = render_config(options.name, backend, batch, options, inputs, outputs, metadata)
        os.rename(staged, model_dir / str(version))  # complete, or not there at all
        with atomic_open(model_dir / CONFIG_NAME) as handle:
            handle.write(text)
    log.info("wrote %s version %d (%s)", model_dir, version, reason)
    return {"model_dir": str(model_dir), "version": version, "backend": backend, "file": filename,
            "precision": precision, "batch": dataclasses.asdict(batch), "reason": reason}
