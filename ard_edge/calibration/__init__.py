"""INT8 calibration: explicit Q/DQ quantization of an exported graph behind an accuracy gate.

``calibrate_onnx`` measures tensor ranges on good images (or reuses a cached set), writes a
QuantizeLinear/DequantizeLinear ONNX graph for TensorRT or for ONNX Runtime on a CPU, and keeps
it only if FP32 and INT8 agree on held-out images. The anomaly-map tail and the uint8 input
prologue stay in float32. onnx and onnxruntime are imported when a function runs.
"""

from ard_edge.calibration._calibrate import (
    DEFAULT_NUM_IMAGES,
    ProgressCallback,
    calibrate_onnx,
    gate_engine,
    ranges_path_for,
    read_ranges,
    report_path_for,
)
from ard_edge.calibration._gate import DEFAULT_MAX_AUROC_DROP, DEFAULT_MIN_AGREEMENT
from ard_edge.calibration._quantize import METHODS, PROFILES, QUANTIZED_OPS, QuantProfile, tensorrt_violations

__all__ = [
    "DEFAULT_MAX_AUROC_DROP",
    "DEFAULT_MIN_AGREEMENT",
    "DEFAULT_NUM_IMAGES",
    "METHODS",
    "PROFILES",
    "QUANTIZED_OPS",
    "ProgressCallback",
    "QuantProfile",
    "calibrate_onnx",
    "gate_engine",
    "ranges_path_for",
    "read_ranges",
    "report_path_for",
    "tensorrt_violations",
]
