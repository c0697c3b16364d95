"""FP16 test helpers: write a converted file, and compare FP16 with FP32 down to the tail's inputs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from ard_edge._io import atomic_path
from ard_edge.engines.fp16 import _FLOAT, _cast_to, convert_to_fp16
from ard_edge.engines.metadata import onnx_metadata
from ard_edge.engines.onnx_graph import CHANNEL_REDUCTIONS, split_graph


def write_fp16_onnx(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Convert the ONNX file ``src`` and write it atomically to ``dst``; return its metadata."""
    import onnx

    converted = convert_to_fp16(onnx.load(str(src)))
    with atomic_path(dst) as tmp:
        onnx.save(converted, str(tmp))
    return onnx_metadata(converted)


def _with_probe_outputs(model, names: list[str]):
    import onnx

    probe = copy.deepcopy(model)
    present = {out.name for out in probe.graph.output}
    for name in names:
        if name not in present:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, _FLOAT, None))
    return probe


def compare_fp16(fp32_model, fp16_model, frames: np.ndarray) -> dict[str, Any]:
    """Run both models with ONNX Runtime (CPU) on uint8 ``frames`` and report the differences.

    Reports the largest absolute score and map errors, whether every decision is identical, and
    whether the tail's inputs (the float16 features, cast to float32) and its channel sums
    (squared norms, dot products) are all finite: an overflow shows up there first.
    """
    import onnxruntime as ort

    tail = split_graph(fp16_model).tail
    by_name = {node.name: node for node in fp16_model.graph.node}
    probes = [
        out
        for name in sorted(tail)
        if by_name[name].op_type in CHANNEL_REDUCTIONS
        for out in by_name[name].output
    ]
    # The tail's inputs are the features as the float16 network hands them over (Cast to float).
    producers = {out: node for node in fp16_model.graph.node for out in node.output}
    seed_inputs = sorted(
        {
            inp
            for name in tail
            for inp in by_name[name].input
            if inp in producers and producers[inp].name not in tail and producers[inp].op_type == "Cast"
            and _cast_to(producers[inp]) == _FLOAT
        }
    )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    reference = ort.InferenceSession(fp32_model.SerializeToString(), options, providers=providers)
    probe_model = _with_probe_outputs(fp16_model, probes + seed_inputs)
    candidate = ort.InferenceSession(probe_model.SerializeToString(), options, providers=providers)
    feed = {reference.get_inputs()[0].name: frames}
    names = [out.name for out in reference.get_outputs()]
    want = dict(zip(names, reference.run(names, feed)))
    got_all = dict(zip([o.name for o in candidate.get_outputs()], candidate.run(None, feed)))
    features = [got_all[name] for name in seed_inputs]
    sums = [got_all[name] for name in probes]
    return {
        "frames": int(len(frames)),
        "max_score_error": float(np.max(np.abs(want["score"] - got_all["score"]))),
        "max_map_error": float(np.max(np.abs(want["anomaly_map"] - got_all["anomaly_map"]))),
        "max_abs_score": float(np.max(np.abs(want["score"]))),
        "decisions_identical": bool(np.array_equal(want["is_anomalous"], got_all["is_anomalous"])),
        "decision_agreement": float(np.mean(want["is_anomalous"] == got_all["is_anomalous"])),
        "features_finite": bool(all(np.isfinite(f).all() for f in features)),
        "max_abs_feature": float(max((np.abs(f).max() for f in features), default=0.0)),
        "channel_sums_finite": bool(all(np.isfinite(s).all() for s in sums)),
        "outputs_finite": bool(np.isfinite(got_all["anomaly_map"]).all() and np.isfinite(got_all["score"]).all()),
        "probed_features": len(features),
        "probed_channel_sums": len(sums),
    }
