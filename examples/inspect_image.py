"""Score one image with any ard-edge engine through the public API.

usage: python examples/inspect_image.py ENGINE IMAGE
    ENGINE: an exported .onnx, a built .engine, or a training checkpoint .ckpt
"""

from __future__ import annotations

import sys

import numpy as np

import ard_edge
from ard_edge.data import read_image
from ard_edge.runtime.predict import frame_for_engine


def inspect(engine_path: str, image_path: str) -> str:
    with ard_edge.open_engine(engine_path) as engine:
        # Resize (and convert to mono) exactly as the camera pipeline does; normalization is in the graph.
        frame = frame_for_engine(read_image(image_path), engine.input_spec)
        result = engine.infer(frame[None])
    verdict = "FAIL" if result.is_anomalous[0] else "PASS"
    amap = result.anomaly_map[0, 0]
    y, x = np.unravel_index(int(amap.argmax()), amap.shape)
    return (
        f"{verdict}  score {result.score[0]:.4f} (normalized {result.normalized_score[0]:.2f}, "
        f"threshold {engine.threshold:.4f}); hottest pixel at x={x}, y={y} of {amap.shape[1]}x{amap.shape[0]}"
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        print(inspect(sys.argv[1], sys.argv[2]))
    except ard_edge.ArdEdgeError as exc:
        sys.exit(f"error: {exc}")
