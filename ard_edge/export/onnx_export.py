"""Export a checkpoint to one fused ONNX graph, metadata inside, written atomically."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

import torch

from ard_edge._version import __version__
from ard_edge._graph import DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAMES
from ard_edge._io import atomic_path, sha256_file
from ard_edge.engines.metadata import load_onnx, stamp_metadata
from ard_edge.errors import ExportError
from ard_edge.model import load_checkpoint
from ard_edge.model.fused import fused_from_checkpoint

log = logging.getLogger(__name__)

FORMAT = "ard-edge-onnx/1"


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    channels: int = 3,
    batch: int | None = 1,
    opset: int = DEFAULT_OPSET,
) -> dict[str, Any]:
    """Write ``out`` and return the metadata stored in it. ``batch=None`` makes the batch dynamic."""
    if channels not in (1, 3):
        raise ExportError(f"--channels must be 1 (mono) or 3 (colour), got {channels}")
    if batch is not None and batch < 1:
        raise ExportError(f"--batch must be >= 1 or 'dynamic', got {batch}")
    model, header = load_checkpoint(checkpoint)
    _check_finite(model, header, checkpoint)
    fused = fused_from_checkpoint(model, header)
    size = model.config.image_size
    example = torch.zeros((batch or 1, size, size, channels), dtype=torch.uint8)
    metadata = _metadata(header, model.config, checkpoint, channels, batch, opset)
    out = Path(out)
    with atomic_path(out) as tmp:
        _trace_to_onnx(fused, example, tmp, batch is None, opset)
        _finish(tmp, metadata)
    log.info("exported %s -> %s", checkpoint, out)
    return metadata


def _check_finite(model, header: dict, checkpoint) -> None:
    """Refuse NaN or infinite weights, threshold or score floor: the exported graph would PASS every part."""
    stats = header.get("score_stats")
    for key, value in (("threshold", header.get("threshold")),
                       ("score_stats.min", stats.get("min") if isinstance(stats, dict) else None)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ExportError(f"{checkpoint}: {key} is {value!r}, not a finite number: retrain the model")
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ExportError(f"{checkpoint}: weight {name} holds NaN or infinite values (did training diverge?):"
                              " retrain the model")


def _trace_to_onnx(fused, example: torch.Tensor, path: Path, dynamic_batch: bool, opset: int) -> None:
    dynamic_axes = {name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)} if dynamic_batch else None
    with warnings.catch_warnings(), torch.no_grad():
        # Shapes are static per export (fixed input size, fixed channels); the tracer's
        # "treated as a constant" warnings say exactly that.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        try:
            torch.onnx.export(
                fused,
                (example,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                opset_version=opset,
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
                dynamo=False,
            )
        except Exception as exc:
            raise ExportError(f"ONNX export failed at opset {opset}: {exc}") from exc


def _finish(path: Path, metadata: dict[str, Any]) -> None:
    import onnx

    proto = load_onnx(path, ExportError)
    stamp_metadata(proto, metadata, ExportError, "the exported graph", full_check=True)
    onnx.save(proto, str(path))


def _metadata(header: dict, config, checkpoint, channels: int, batch: int | None, opset: int) -> dict:
    size = config.image_size
    return {
        "format": FORMAT,
        "model": header["model"],
        "input": {
            "name": INPUT_NAME,
            "layout": "NHWC",
            "dtype": "uint8",
            "height": size,
            "width": size,
            "channels": channels,
            "batch": batch if batch is not None else "dynamic",
        },
        "outputs": list(OUTPUT_NAMES),
        "threshold": header["threshold"],
        "score_stats": header["score_stats"],
        "normalization": {"mean": list(config.normalization[0]), "std": list(config.normalization[1])},
        "data_fingerprint": header.get("data_fingerprint"),
        "checkpoint_sha256": sha256_file(checkpoint),
        "precision": "fp32",
        "opset": opset,
        "ard_edge_version": __version__,
        "torch_version": torch.__version__,
    }
