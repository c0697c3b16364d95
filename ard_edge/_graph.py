"""The fused graph's interface: its input and output names and the opset it is exported at.

A leaf with no imports, shared by the model's fused module, the exporter, every engine and the
CLI, so none of them has to import another (or torch) to agree on a name.
"""

INPUT_NAME = "frames"
OUTPUT_NAMES = ("anomaly_map", "score", "normalized_score", "is_anomalous")
DEFAULT_OPSET = 17
