"""OpenVINO backend: the runner (CPU; GPU/NPU where OpenVINO offers them, untested here) and the
builder that converts an ard-edge ONNX into OpenVINO IR. openvino loads when either runs.
"""

from ard_edge.engines.openvino._environment import check_openvino_version, current_environment, probe
from ard_edge.engines.openvino.runner import HINTS, INFERENCE_PRECISIONS, OpenVINOEngine, weights_path

__all__ = ["check_openvino_version", "HINTS", "INFERENCE_PRECISIONS", "OpenVINOEngine", "current_environment", "probe", "weights_path"]
