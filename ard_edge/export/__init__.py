"""Checkpoint -> fused ONNX graph (uint8 frames in; map, scores, decision out)."""

from ard_edge._graph import OUTPUT_NAMES
from ard_edge.export.onnx_export import export_onnx
from ard_edge.model.fused import FusedARD, fused_from_checkpoint

__all__ = ["OUTPUT_NAMES", "FusedARD", "export_onnx", "fused_from_checkpoint"]
