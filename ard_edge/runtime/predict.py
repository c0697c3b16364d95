"""Score image files with any engine: decisions as JSON lines, heatmap overlays as PNG."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ard_edge._io import atomic_open
from ard_edge.data import IMAGE_EXTENSIONS, engine_frame, is_image_file, read_image, write_png
from ard_edge.engines.base import Engine, InputSpec
from ard_edge.errors import DataError
from ard_edge.runtime.decision import ERROR, FAIL, NON_FINITE_OUTPUT, PASS, non_finite, threshold_error
from ard_edge.runtime.heatmap import render_overlay

PREDICTIONS_NAME = "predictions.jsonl"
_DEFAULT_BATCH = 8


@dataclasses.dataclass(frozen=True)
class Prediction:
    path: str
    score: float | None  # None for ERROR
    normalized_score: float | None
    verdict: str  # PASS, FAIL or ERROR (unreadable image, non-finite engine output)
    heatmap: str | None
    error: str | None = None


def collect_images(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand folders (sorted, image files only) and check that files exist."""
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths += sorted(p for p in item.rglob("*") if is_image_file(p))
        elif item.is_file():
            paths.append(item)
        else:
            raise DataError(f"input not found: {item}")
    if not paths:
        raise DataError("no images among the inputs (looked for " + ", ".join(IMAGE_EXTENSIONS) + ")")
    return paths


def frame_for_engine(image_rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """An RGB image as the engine's camera would deliver it: engine size, engine channels."""
    return engine_frame(image_rgb, (spec.height, spec.width), spec.channels)


def predict_files(
    engine: Engine,
    paths: list[Path],
    out_dir: str | Path,
    on_batch: Callable[[int], None] | None = None,
) -> list[Prediction]:
    """Run ``engine`` on ``paths``; write ``predictions.jsonl`` and ``heatmaps/*.png`` under ``out_dir``."""
    out_dir = Path(out_dir)
    spec = engine.input_spec
    batch_size = spec.fixed_batch or _DEFAULT_BATCH
    predictions: list[Prediction] = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        frames, errors = _read_frames(chunk, spec)
        readable = [i for i, error in enumerate(errors) if error is None]
        result = engine.infer(spec.pad(frames[readable])) if readable else None
        rows = {i: row for row, i in enumerate(readable)}  # chunk index -> row of the engine output
        for i, row in rows.items():
            errors[i] = threshold_error(engine.threshold) or (NON_FINITE_OUTPUT if non_finite(result[row])[0] else None)
        for i, path in enumerate(chunk):
            if errors[i] is not None:
                predictions.append(Prediction(str(path), None, None, ERROR, None, errors[i]))
                continue
            row = rows[i]
            heatmap = out_dir / "heatmaps" / f"{start + i:05d}_{path.stem}.png"
            write_png(heatmap, render_overlay(frames[i], result.anomaly_map[row, 0], engine.threshold))
            predictions.append(Prediction(
                str(path), float(result.score[row]), float(result.normalized_score[row]),
                FAIL if result.is_anomalous[row] else PASS, str(heatmap),
            ))
        if on_batch:
            on_batch(len(chunk))
    with atomic_open(out_dir / PREDICTIONS_NAME) as handle:
        for prediction in predictions:
            handle.write(json.dumps(dataclasses.asdict(prediction), allow_nan=False) + "\n")
    return predictions


def _read_frames(chunk: list[Path], spec: InputSpec) -> tuple[np.ndarray, list[str | None]]:
    """The chunk's frames (a blank one where a file is unreadable) and, per file, why it is unreadable."""
    frames = np.zeros((len(chunk), spec.height, spec.width, spec.channels), np.uint8)
    errors: list[str | None] = [None] * len(chunk)
    for i, path in enumerate(chunk):
        try:
            frames[i] = frame_for_engine(read_image(path), spec)
        except DataError as exc:  # one bad file is one ERROR row, as in a replay
            errors[i] = str(exc)
    return frames, errors
