"""Open engines for a benchmark and run either mode into a :class:`BenchReport`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ard_edge.bench._environment import collect_environment
from ard_edge.bench._pipeline import measure_pipeline
from ard_edge.bench._raw import engine_labels, engine_summary, measure
from ard_edge.bench._report import BenchReport
from ard_edge.bench._config import BenchSettings
from ard_edge.engines.base import Engine
from ard_edge.errors import ConfigError


def engine_options(path: str | Path, threads: int | None = None, channels: int | None = None) -> dict[str, Any]:
    """The ``open_engine`` options: CPU threads (a GPU engine ignores them), channels for a checkpoint."""
    options: dict[str, Any] = {"threads": threads}
    if Path(path).suffix.lower() == ".ckpt":
        options["channels"] = channels or 3
    return options


def open_engines(paths: Sequence[str | Path], stack, threads: int | None = None, channels: int | None = None) -> list[Engine]:
    """Open every engine on ``stack`` (a contextlib.ExitStack), so each is closed whatever happens."""
    from ard_edge.engines import open_engine

    if not paths:
        raise ConfigError("give at least one --engine")
    if channels is not None and not any(Path(p).suffix.lower() == ".ckpt" for p in paths):
        raise ConfigError("--channels applies to .ckpt engines only (an ONNX or TensorRT engine has its channels built in)")
    return [stack.enter_context(open_engine(p, **engine_options(p, threads, channels))) for p in paths]


def run_raw_bench(
    engines: Sequence[Engine],
    settings: BenchSettings,
    on_round: Callable[[], None] | None = None,
    command: str | None = None,
) -> BenchReport:
    """Time ``Engine.infer`` interleaved across ``engines`` at every batch size (see ``_raw``)."""
    environment = collect_environment()
    results, skipped = measure(engines, settings, on_round=on_round)
    return _report("raw", engines, settings, environment, command, results=results, skipped=skipped)


def run_pipeline_bench(
    engines: Sequence[Engine],
    camera: str,
    settings: BenchSettings,
    runtime=None,
    cameras: Mapping[str, Any] | None = None,
    make_sinks: Callable[[], list] | None = None,
    command: str | None = None,
) -> BenchReport:
    """Stream ``camera`` through each engine with the real runtime (see ``_pipeline``)."""
    if settings.cuda_graph:
        raise ConfigError("--cuda-graph applies to raw engine mode, not --pipeline")
    environment = collect_environment()
    pipeline = measure_pipeline(engines, camera, settings, runtime, cameras, make_sinks)
    notes = [
        f"{p.engine}: run {n + 1} ended early: {run['error']}"
        for p in pipeline for n, run in enumerate(p.runs) if run.get("error")
    ]
    return _report("pipeline", engines, settings, environment, command, pipeline=pipeline, notes=notes)


def _report(
    mode: str,
    engines: Sequence[Engine],
    settings: BenchSettings,
    environment: dict[str, Any],
    command: str | None,
    **measured: Any,
) -> BenchReport:
    """Assemble either mode's report once the runs are over (the load average is read now)."""
    labels = engine_labels(engines)
    return BenchReport(
        mode=mode,
        settings=settings,
        environment=environment,
        engines=[engine_summary(e, labels[i], i, cuda_graph=settings.cuda_graph) for i, e in enumerate(engines)],
        command=command,
        loadavg_end=_loadavg(),
        **measured,
    )


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None
