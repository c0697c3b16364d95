"""Checkpoint -> fused ONNX graph (uint8 frames in; map, scores, decision out)."""

from ard_edge.export.fused import OUTPUT_NAMES, FusedARD, fused_from_checkpoint
from ard_edge.export.onnx_export import export_onnx

__all__ = ["OUTPUT_NAMES", "FusedARD", "export_onnx", "fused_from_checkpoint"]
