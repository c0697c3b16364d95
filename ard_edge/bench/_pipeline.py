"""Pipeline mode: capture-to-decision latency and frames/s through the real streaming runtime.

Each engine streams a real source (a GenICam camera, or a ``folder:``/``video:`` replay, looped
so a few images last the whole run) through :func:`ard_edge.runtime.run_pipeline`, bounded by
frames or seconds. Runs cannot overlap (one camera), so engines take turns run by run: with
``repeat`` K the order is A B A B ..., K times, and each engine's runs are summarised by their
medians and the spread of their p50s.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ard_edge.bench._raw import engine_labels, plan_batches, random_frames
from ard_edge.bench._stats import RunSpread, run_spread
from ard_edge.bench._config import BenchSettings
from ard_edge.engines.base import Engine

log = logging.getLogger(__name__)

REPLAY_PREFIXES = ("folder:", "video:")


@dataclasses.dataclass
class PipelineResult:
    """Every streaming run of one engine at one requested batch size."""

    engine_index: int
    engine: str
    camera: str
    batch: int  # frames per engine call the pipeline used (the request clipped to the engine's range)
    runs: list[dict[str, Any]]  # RunSummary.to_dict() of each run, in run order

    def _median(self, get) -> float | None:
        values = [v for v in (get(run) for run in self.runs) if v is not None]
        return float(np.median(values)) if values else None

    @property
    def latency_ms(self) -> dict[str, float | None]:
        """Capture-to-decision p50/p90/p99 (medians over runs) and the max over all runs."""
        data = {q: self._median(lambda run, q=q: run["latency_ms"].get(q)) for q in ("p50", "p90", "p99")}
        maxima = [run["latency_ms"].get("max") for run in self.runs if run["latency_ms"].get("max") is not None]
        data["max"] = max(maxima) if maxima else None
        return data

    @property
    def spread(self) -> RunSpread | None:
        p50s = [run["latency_ms"]["p50"] for run in self.runs if run["latency_ms"].get("p50") is not None]
        return run_spread(p50s) if p50s else None

    def to_dict(self) -> dict[str, Any]:
        decisions: dict[str, int] = {}
        for run in self.runs:
            for verdict, count in run["decisions"].items():
                decisions[verdict] = decisions.get(verdict, 0) + count
        spread = self.spread
        return {
            "engine": self.engine,
            "engine_index": self.engine_index,
            "camera": self.camera,
            "batch": self.batch,
            "latency_ms": self.latency_ms,
            "engine_ms_p50": self._median(lambda run: run.get("engine_ms_p50")),
            "throughput_fps": self._median(lambda run: run.get("throughput_fps")),
            "frames_captured": sum(run["frames_captured"] for run in self.runs),
            "decisions": decisions,
            "dropped": sum(run["dropped"] for run in self.runs),
            "wall_s": sum(run["wall_s"] for run in self.runs),
            "stop_reasons": [run.get("stop_reason", "") for run in self.runs],
            "repeat": spread.to_dict() if spread else None,
            "runs": self.runs,
        }


def measure_pipeline(
    engines: Sequence[Engine],
    camera: str,
    settings: BenchSettings,
    runtime=None,
    cameras: Mapping[str, Any] | None = None,
    make_sinks: Callable[[], list] | None = None,
) -> list[PipelineResult]:
    """Stream ``camera`` through each engine at each batch size, ``settings.repeat`` times.

    Args:
        engines: opened engines.
        camera: a camera alias, ``folder:PATH`` or ``video:PATH``.
        settings: ``iterations`` are frames per run, ``duration_s`` seconds per run.
        runtime: the ``runtime:`` section (RuntimeConfig); its ``batch`` is replaced per batch size.
        cameras: the ``cameras:`` section of ard-edge.yaml.
        make_sinks: returns fresh sinks for each run (the CLI's progress bar); none by default.
    """
    from ard_edge.camera import open_source
    from ard_edge.runtime import RuntimeConfig, batch_size_for, run_pipeline

    settings.validate()
    runtime = runtime or RuntimeConfig()
    plan, _ = plan_batches(engines, settings.batches)
    labels = engine_labels(engines)
    loop = camera.startswith(REPLAY_PREFIXES)
    results: dict[tuple[int, int], PipelineResult] = {}
    for run in range(settings.repeat):
        for batch, members in plan.items():
            config = dataclasses.replace(runtime, batch=batch)
            config.validate("runtime")
            for i in members:
                engine = engines[i]
                spec = engine.input_spec
                used = batch_size_for(spec, batch)
                frames = random_frames((used, spec.height, spec.width, spec.channels), settings.seed)
                for _ in range(settings.warmup):
                    engine.infer(frames)
                log.info("run %d: %s through %s, batch %d", run + 1, camera, labels[i], used)
                with open_source(camera, cameras, loop=loop) as source:
                    summary = run_pipeline(
                        source,
                        engine,
                        config,
                        sinks=make_sinks() if make_sinks else None,
                        max_frames=settings.iterations,
                        duration_s=settings.duration_s,
                    )
                key = (i, batch)
                if key not in results:
                    results[key] = PipelineResult(i, labels[i], camera, used, [])
                results[key].runs.append(summary.to_dict())
    return [results[(i, batch)] for batch, members in plan.items() for i in members]
