"""``calibrate_onnx``: ranges (measured or cached) -> Q/DQ model -> accuracy gate -> files, or nothing."""

from __future__ import annotations

import collections
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ard_edge._io import atomic_path, sha256_file, write_json
from ard_edge.calibration import _gate
from ard_edge.calibration._gate import DEFAULT_MAX_AUROC_DROP, DEFAULT_MIN_AGREEMENT
from ard_edge.calibration._images import ImageSplit, frame_batches, split_images
from ard_edge.calibration._quantize import (
    QUANTIZED_OPS,
    check_choice,
    collect_ranges,
    prepare_model,
    quantize_model,
    tensorrt_violations,
)
from ard_edge.engines.base import Engine, InputSpec
from ard_edge.engines.metadata import load_onnx, onnx_metadata, stamp_metadata
from ard_edge.engines.onnx_graph import is_qdq
from ard_edge.errors import AccuracyGateRefused, CalibrationError, ConfigError, DataError

log = logging.getLogger(__name__)

RANGES_FORMAT = "ard-edge-ranges/1"
RANGES_SUFFIX = ".ranges.json"
REPORT_SUFFIX = ".report.json"
DEFAULT_NUM_IMAGES = 256

# progress(stage, done, total): stage is "calibrate", "gate fp32" or "gate int8".
ProgressCallback = Callable[[str, int, int], None]


def ranges_path_for(out_path: str | Path) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + RANGES_SUFFIX)


def report_path_for(out_path: str | Path) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + REPORT_SUFFIX)


def calibrate_onnx(
    onnx_path: str | Path,
    data_dir: str | Path | None,
    out_path: str | Path,
    profile: str = "tensorrt",
    num_images: int = DEFAULT_NUM_IMAGES,
    method: str = "percentile",
    max_auroc_drop: float = DEFAULT_MAX_AUROC_DROP,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    *,
    ranges_path: str | Path | None = None,
    quantize_stem: bool = False,
) -> dict[str, Any]:
    """Quantize an exported ONNX model to INT8 Q/DQ and gate it against the FP32 model.

    Calibration uses good images only (``data_dir/train/good`` or a plain folder), read and
    resized exactly as the engine's input; the gate runs both models on the held-out good images
    and on ``data_dir/test`` when it exists. On success writes ``out_path``, the ranges cache
    (``<out>.ranges.json``) and the report (``<out>.report.json``) and returns the report. When
    the gate refuses, raises AccuracyGateRefused (its ``report`` holds the numbers) and writes
    nothing.

    Ranges come from ``ranges_path`` when given, else from ``<out>.ranges.json`` when it was
    computed for this very ONNX file, method and image sample, else from the images. A rebuild
    from a cache needs no images: with ``data_dir`` missing the gate is skipped and says so.
    The teacher's stem stays float unless ``quantize_stem`` (see ``quantize_model``).
    """
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    quant_profile = check_choice(profile, method)
    if num_images < 1:
        raise ConfigError(f"--num-images must be >= 1, got {num_images}")
    if not onnx_path.is_file():
        raise CalibrationError(f"ONNX model not found: {onnx_path}")
    if out_path.resolve() == onnx_path.resolve():
        raise ConfigError(f"--out {out_path} would overwrite the FP32 model: choose another path")
    metadata, spec = _read_export(onnx_path)
    onnx_sha256 = sha256_file(onnx_path)

    images = None
    if data_dir is not None and Path(data_dir).exists():
        images = split_images(data_dir, num_images, seed)
    cache, cache_source = _find_ranges(ranges_path, out_path, onnx_sha256, method, seed, images)
    if cache is None and images is None:
        cache_hint = f"no ranges cache for this model at {ranges_path_for(out_path)}"
        if data_dir is None:
            raise ConfigError(f"pass --data with good images (or --ranges): {cache_hint}")
        raise DataError(f"data folder not found: {data_dir}, and {cache_hint}")
    if images is not None and not images.gate:
        raise CalibrationError(
            f"no images left for the accuracy gate in {data_dir}: add good images (the gate needs "
            "some that calibration does not use) or a test/ folder"
        )
    if cache is not None and cache["method"] != method:
        log.warning("ranges in %s were calibrated with %s, not %s: using them", cache_source, cache["method"], method)
        method = cache["method"]

    report: dict[str, Any] = {
        "onnx": str(onnx_path),
        "onnx_sha256": onnx_sha256,
        "output": str(out_path),
        "quantization": {**quant_profile.describe(), "method": method},
        "seed": seed,
    }
    with tempfile.TemporaryDirectory(prefix="ard-edge-calibrate-") as tmp:
        work = Path(tmp)
        prepared = work / "prepared.onnx"
        parts = prepare_model(onnx_path, prepared)
        float_stem = parts.stem & parts.feature_layers if not quantize_stem else frozenset()
        report["quantization"]["float_stem"] = bool(float_stem)
        if cache is None:
            ranges = _calibrate(prepared, images, spec, method, work, progress)
            report["ranges"] = {"source": "calibrated", "num_images": len(images.calibration)}
        else:
            ranges = {name: (float(low), float(high)) for name, (low, high) in cache["tensors"].items()}
            report["ranges"] = {"source": str(cache_source), "num_images": cache["num_images"]}
        report["ranges"]["num_tensors"] = len(ranges)

        quantized = work / "model.int8.onnx"
        try:
            quantize_model(prepared, quantized, parts, ranges, quant_profile, work, quantize_stem)
        except CalibrationError as exc:
            if cache is None:
                raise
            raise CalibrationError(f"{exc}; the ranges in {cache_source} came from {cache.get('tool')}: "
                                   "recalibrate with --data") from exc
        report["nodes"] = _finish(quantized, _int8_metadata(metadata, report, onnx_sha256), quant_profile.name)
        report["nodes"]["float_tail"] = len(parts.tail)
        report["nodes"]["float_stem"] = len(float_stem)

        if images is not None:
            report["gate"] = _run_gate(onnx_path, quantized, images, max_auroc_drop, min_agreement, progress)
        else:
            report["gate"] = {"status": "skipped", "reason": "no images to compare on; ranges from the cache",
                              "ranges_gated_with": cache.get("gate")}
        if report["gate"]["status"] == "refused":
            others = " or ".join(f"--method {m}" for m in ("percentile", "minmax", "entropy") if m != method)
            raise AccuracyGateRefused(
                "accuracy gate refused the INT8 model: " + "; ".join(report["gate"]["reasons"])
                + f". Nothing written: try {others}, more --num-images, or the other --profile",
                report,
            )

        record = cache if cache is not None else _cache_record(ranges, onnx_sha256, method, seed, images)
        if report["gate"]["status"] == "passed":
            record = {**record, "gate": _gate_summary(report)}
        # The model last: a reader that finds it finds its cache and report too.
        write_json(ranges_path_for(out_path), record)
        write_json(report_path_for(out_path), report)
        with atomic_path(out_path) as final:
            shutil.copyfile(quantized, final)
    report["ranges"]["cache"] = str(ranges_path_for(out_path))
    report["report_path"] = str(report_path_for(out_path))
    log.info("wrote %s (%s, %s)", out_path, profile, method)
    return report


def _int8_metadata(metadata: dict, report: dict, onnx_sha256: str) -> dict:
    """The FP32 export's metadata, marked int8, with how it was quantized."""
    return {
        **metadata,
        "precision": "int8",
        "quantization": {
            **report["quantization"],
            "num_calibration_images": report["ranges"]["num_images"],
            "fp32_onnx_sha256": onnx_sha256,
            "float_parts": "; ".join(
                ["uint8 input prologue"]
                + (["teacher stem (up to its first tap)"] if report["quantization"]["float_stem"] else [])
                + ["anomaly-map tail (cosine, resize, sum, blur, score, decision)"]
            ),
            "tool": _tool_version(),
        },
    }


def read_ranges(path: str | Path) -> dict[str, Any]:
    """Load a ranges cache written by calibrate_onnx, or raise CalibrationError saying why not."""
    path = Path(path)
    try:
        cache = json.loads(path.read_text())
    except FileNotFoundError:
        raise CalibrationError(f"ranges file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"cannot read ranges file {path}: {exc}") from exc
    if not isinstance(cache, dict) or cache.get("format") != RANGES_FORMAT or not isinstance(
        cache.get("tensors"), dict
    ):
        raise CalibrationError(f"{path} is not an ard-edge ranges file (format {RANGES_FORMAT})")
    return cache


def _read_export(onnx_path: Path) -> tuple[dict, dict]:
    proto = load_onnx(onnx_path, CalibrationError)
    metadata = onnx_metadata(proto, onnx_path)  # EngineError: not an ard-edge export
    if is_qdq(proto) or metadata.get("precision") == "int8":
        raise CalibrationError(f"{onnx_path} is already quantized: calibrate the FP32 export instead")
    spec = metadata.get("input") or {}
    if not all(isinstance(spec.get(key), int) for key in ("height", "width", "channels")):
        raise CalibrationError(f"{onnx_path}: its ard-edge metadata lacks the input size: re-export it")
    return metadata, spec


def _find_ranges(ranges_path, out_path: Path, onnx_sha256: str, method: str, seed: int,
                 images: ImageSplit | None) -> tuple[dict | None, Path | None]:
    if ranges_path is not None:
        cache = read_ranges(ranges_path)
        if cache.get("onnx_sha256") != onnx_sha256:
            raise CalibrationError(
                f"{ranges_path} holds ranges for another ONNX file (sha256 {str(cache.get('onnx_sha256'))[:12]}...): "
                "calibrate this model from images instead"
            )
        return cache, Path(ranges_path)
    default = ranges_path_for(out_path)
    if not default.is_file():
        return None, None
    try:
        cache = read_ranges(default)
    except CalibrationError as exc:
        log.warning("ignoring %s", exc)
        return None, None
    if cache.get("onnx_sha256") != onnx_sha256 or cache.get("method") != method:
        log.info("ranges cache %s is for another model or method: recalibrating", default)
        return None, None
    if images is not None and (cache.get("images_sha256") != images.fingerprint() or cache.get("seed") != seed):
        log.info("ranges cache %s was computed on other images: recalibrating", default)
        return None, None
    return cache, default


def _calibrate(prepared: Path, images: ImageSplit, spec: dict, method: str, work: Path,
               progress: ProgressCallback | None) -> dict[str, tuple[float, float]]:
    batch = spec["batch"] if isinstance(spec.get("batch"), int) else 1
    total, done = len(images.calibration), 0

    def on_batch(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress("calibrate", done, total)

    engine_spec = InputSpec(spec["height"], spec["width"], spec["channels"], min_batch=batch, max_batch=batch)
    batches = frame_batches(images.calibration, engine_spec, batch)
    return collect_ranges(prepared, batches, method, work, spec.get("name", "frames"), on_batch)


def _finish(quantized: Path, metadata: dict, profile: str) -> dict:
    """Put the metadata in, check the graph; return which ops were quantized."""
    import onnx

    proto = load_onnx(quantized, CalibrationError)
    stamp_metadata(proto, metadata, CalibrationError, "the quantized graph")
    if profile == "tensorrt":
        problems = tensorrt_violations(proto)
        if problems:
            raise CalibrationError(f"the Q/DQ graph breaks TensorRT's rules: {problems[0]} ({len(problems)} in all)")
    onnx.save(proto, str(quantized))
    produced_by_dq = {out for node in proto.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    quantized_ops = collections.Counter(
        node.op_type for node in proto.graph.node
        if node.op_type in QUANTIZED_OPS and len(node.input) > 1 and node.input[1] in produced_by_dq
    )
    return {
        "quantized": dict(sorted(quantized_ops.items())),
        "quantize_linear": sum(node.op_type == "QuantizeLinear" for node in proto.graph.node),
        "dequantize_linear": sum(node.op_type == "DequantizeLinear" for node in proto.graph.node),
    }


def gate_engine(
    onnx_path: str | Path,
    open_candidate: Callable[[], Engine],
    data_dir: str | Path,
    candidate: str,
    num_images: int = DEFAULT_NUM_IMAGES,
    seed: int = 0,
    max_auroc_drop: float = DEFAULT_MAX_AUROC_DROP,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Gate the engine ``open_candidate()`` opens (``candidate``: its precision) against ``onnx_path`` on ONNX Runtime.

    The same images as :func:`calibrate_onnx` with the same ``num_images`` and ``seed``: the
    held-out good images and ``data_dir/test``. Returns the gate's numbers; raises
    AccuracyGateRefused (exit status 3) when it refuses.
    """
    images = split_images(data_dir, num_images, seed)
    if not images.gate:
        raise CalibrationError(f"no images for the accuracy gate in {data_dir}: add good images or a test/ folder")
    gate = _run_gate(Path(onnx_path), open_candidate, images, max_auroc_drop, min_agreement, progress, candidate,
                     subject=f"the {candidate} engine as built, against the fp32 graph on ONNX Runtime")
    if gate["status"] == "refused":
        raise AccuracyGateRefused(f"accuracy gate refused the {candidate} engine: " + "; ".join(gate["reasons"])
                                  + ". Nothing written: build fp32, or int8 from the Q/DQ graph", {"gate": gate})
    return gate


def _run_gate(fp32: Path, candidate: _gate.Model, images: ImageSplit, max_auroc_drop: float, min_agreement: float,
              progress: ProgressCallback | None, candidate_name: str = "int8",
              subject: str = "the Q/DQ graph on ONNX Runtime, against the fp32 graph") -> dict:
    items = images.gate
    results = {}
    for name, model in (("fp32", fp32), (candidate_name, candidate)):
        done = 0

        def on_batch(count: int, stage: str = f"gate {name}") -> None:
            nonlocal done
            done += count
            if progress:
                progress(stage, done, len(items))

        results[name] = _gate.run_engine(model, items, on_batch)
    labels = [label for _, label in items]
    gate = _gate.compare(results["fp32"], results[candidate_name], labels, max_auroc_drop, min_agreement, candidate_name)
    return {**gate, "subject": subject}  # a build can gate twice (its Q/DQ graph, then its engine): say which


def _cache_record(ranges: dict, onnx_sha256: str, method: str, seed: int, images: ImageSplit) -> dict:
    return {
        "format": RANGES_FORMAT,
        "onnx_sha256": onnx_sha256,
        "method": method,
        "seed": seed,
        "num_images": len(images.calibration),
        "images_sha256": images.fingerprint(),
        "tool": _tool_version(),
        "tensors": {name: [low, high] for name, (low, high) in sorted(ranges.items())},
    }


def _gate_summary(report: dict) -> dict:
    gate = report["gate"]
    keys = ("decision_agreement", "image_auroc_fp32", "image_auroc_int8", "auroc_drop", "num_images")
    quantization = report["quantization"]
    return {"profile": quantization["profile"], "float_stem": quantization["float_stem"],
            **{key: gate[key] for key in keys}}


def _tool_version() -> str:
    import onnxruntime

    return f"onnxruntime.quantization {onnxruntime.__version__}"
