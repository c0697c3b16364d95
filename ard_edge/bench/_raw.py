"""Raw engine mode: time ``Engine.infer`` on fixed random frames, several engines interleaved.

Per run and batch size, every engine that accepts the batch gets ``warmup`` untimed calls, then
the timed rounds go round-robin, one call per engine per round (A B A B ...), so a slow drift
of the machine (a neighbour's job, thermal throttling, turbo decay) lands on every engine alike
instead of on whichever happened to run last. Each call is timed on the host with
``time.perf_counter_ns`` and, alongside, the CPU time the process spent on it
(``time.process_time_ns``, all threads): on a shared machine wall time includes waiting for a
CPU, CPU time mostly does not. An engine that exposes ``last_timings_ms`` (TensorRT: CUDA events)
also contributes host latency (H2D + GPU compute + D2H) and GPU compute time, as trtexec reports
them. Python's cyclic garbage collector is paused while timing so its sweeps do not show up
as outliers (``timeit`` does the same).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ard_edge.bench._stats import LatencyStats, RunSpread, latency_stats, run_spread, throughput_ips
from ard_edge.bench._config import BenchSettings
from ard_edge.engines.base import Engine
from ard_edge.errors import ConfigError, EngineError

log = logging.getLogger(__name__)

# GPU timing series, named as trtexec names them (in ms per batch).
GPU_SERIES = ("host_latency_ms", "gpu_compute_ms", "h2d_ms", "d2h_ms")


@dataclasses.dataclass
class BenchResult:
    """The timed calls of one engine at one batch size, over all runs."""

    engine_index: int
    engine: str  # label (see engine_labels)
    batch: int
    samples_ms: np.ndarray  # host wall time per call, all runs pooled, in call order
    run_p50s_ms: list[float]  # p50 of each run
    gpu_ms: dict[str, np.ndarray]  # GPU_SERIES name -> samples; empty on engines without CUDA timings
    cpu_ms: np.ndarray | None = None  # process CPU time per call (all threads), same order as samples_ms

    @property
    def latency(self) -> LatencyStats:
        return latency_stats(self.samples_ms)

    @property
    def throughput_ips(self) -> float:
        return throughput_ips(self.batch, self.samples_ms)

    @property
    def spread(self) -> RunSpread:
        return run_spread(self.run_p50s_ms)


@dataclasses.dataclass(frozen=True)
class Skipped:
    engine_index: int
    engine: str
    batch: int
    reason: str


def engine_labels(engines: Sequence[Engine]) -> list[str]:
    """``backend:precision:file`` per engine; repeats get ``#2``, ``#3`` so every label is unique."""
    labels: list[str] = []
    seen: dict[str, int] = {}
    for engine in engines:
        seen[engine.name] = seen.get(engine.name, 0) + 1
        labels.append(engine.name if seen[engine.name] == 1 else f"{engine.name}#{seen[engine.name]}")
    return labels


def batch_range(engine: Engine) -> str:
    spec = engine.input_spec
    if spec.fixed_batch is not None:
        return f"fixed batch {spec.fixed_batch}"
    return f"batch {spec.min_batch}..{'any' if spec.max_batch is None else spec.max_batch}"


def accepts_batch(engine: Engine, batch: int) -> bool:
    spec = engine.input_spec
    return batch >= spec.min_batch and (spec.max_batch is None or batch <= spec.max_batch)


def plan_batches(engines: Sequence[Engine], batches: Sequence[int]) -> tuple[dict[int, list[int]], list[Skipped]]:
    """Which engines run at which batch size.

    Policy: with one batch size, an engine that does not accept it is an error (the user asked
    for exactly that measurement). With several, an engine is skipped at the sizes outside its
    range, with a note in the report; a batch size that no engine accepts is an error.

    Raises:
        ConfigError: naming the engine(s), the batch and the range each accepts.
    """
    labels = engine_labels(engines)
    plan: dict[int, list[int]] = {}
    skipped: list[Skipped] = []
    for batch in batches:
        members = [i for i, engine in enumerate(engines) if accepts_batch(engine, batch)]
        if not members or len(batches) == 1 and len(members) < len(engines):
            refused = [i for i in range(len(engines)) if i not in members]
            detail = "; ".join(f"{labels[i]} ({engines[i].path}) accepts {batch_range(engines[i])}" for i in refused)
            raise ConfigError(f"--batch {batch} does not fit: {detail}")
        plan[batch] = members
        skipped += [
            Skipped(i, labels[i], batch, f"outside the engine's range ({batch_range(engines[i])})")
            for i in range(len(engines))
            if i not in members
        ]
    return plan, skipped


def random_frames(shape: tuple[int, int, int, int], seed: int) -> np.ndarray:
    """A uint8 NHWC batch, the same for the same shape and seed (the batch size is in the shape)."""
    return np.random.default_rng([seed, *shape]).integers(0, 256, size=shape, dtype=np.uint8)


def check_plan(engines: Sequence[Engine], settings: BenchSettings) -> None:
    """Raise now what :func:`measure` would raise before timing: bad settings, batch sizes, CUDA graphs."""
    settings.validate()
    if not engines:
        raise ConfigError("give at least one --engine")
    plan_batches(engines, settings.batches)
    if settings.cuda_graph:
        _check_cuda_graphs(engines)


def _check_cuda_graphs(engines: Sequence[Engine]) -> None:
    """Raise naming the engines without CUDA-graph capture.

    The capability is duck-typed: an engine offers it with a callable ``enable_cuda_graph()``
    (and may veto with ``supports_cuda_graph = False``), so no backend class is imported here.
    """
    labels = engine_labels(engines)
    unable = [
        f"{labels[i]} (backend {engine.backend})"
        for i, engine in enumerate(engines)
        if not callable(getattr(engine, "enable_cuda_graph", None)) or not getattr(engine, "supports_cuda_graph", True)
    ]
    if unable:
        raise EngineError(f"--cuda-graph: no CUDA-graph capture on {', '.join(unable)}; drop --cuda-graph for these engines")


def enable_cuda_graphs(engines: Sequence[Engine]) -> None:
    """Turn on CUDA-graph capture on every engine, or raise naming those that cannot."""
    _check_cuda_graphs(engines)
    for engine in engines:
        engine.enable_cuda_graph()


def gpu_timings(engine: Engine) -> dict[str, float] | None:
    """The engine's CUDA-event timings of its last call, in trtexec's terms, or None.

    Reads ``last_timings_ms``: ``gpu_compute_ms`` (or ``compute_ms``), ``h2d_ms``, ``d2h_ms`` and
    ``host_ms`` (copy in + compute + copy out); host latency is summed from the parts when the
    engine does not give it whole.
    """
    timings = getattr(engine, "last_timings_ms", None)
    if not isinstance(timings, dict) or not timings:
        return None
    compute = timings.get("gpu_compute_ms", timings.get("compute_ms"))
    h2d, d2h = timings.get("h2d_ms"), timings.get("d2h_ms")
    host = timings.get("host_ms")
    if host is None and None not in (compute, h2d, d2h):
        host = h2d + compute + d2h
    if host is None:
        host = timings.get("gpu_total_ms")
    values = {"host_latency_ms": host, "gpu_compute_ms": compute, "h2d_ms": h2d, "d2h_ms": d2h}
    return {k: float(v) for k, v in values.items() if v is not None}


def engine_threads(engine: Engine) -> int | None:
    """CPU threads the engine computes with: ORT intra-op threads, or torch's thread count."""
    threads = getattr(engine, "intra_op_threads", None)
    if threads is None:
        threads = engine.describe().get("intra_op_threads")
    if threads is None and engine.backend == "torch" and "torch" in sys.modules:
        threads = sys.modules["torch"].get_num_threads()
    return int(threads) if threads is not None else None


def engine_summary(engine: Engine, label: str, index: int, cuda_graph: bool = False) -> dict[str, Any]:
    spec = engine.input_spec
    return {
        "index": index,
        "label": label,
        "path": str(engine.path),
        "backend": engine.backend,
        "precision": engine.metadata.get("precision", "fp32"),
        "input": {
            "height": spec.height,
            "width": spec.width,
            "channels": spec.channels,
            "min_batch": spec.min_batch,
            "max_batch": spec.max_batch,
            "fixed_batch": spec.fixed_batch,
        },
        "threads": engine_threads(engine),
        "cuda_graph": cuda_graph,
        "describe": _jsonable(engine.describe()),
    }


def total_rounds(settings: BenchSettings) -> int | None:
    """Timed rounds the whole measurement will take, or None when bounded by time."""
    if settings.iterations is None:
        return None
    return settings.iterations * len(settings.batches) * settings.repeat


def measure(
    engines: Sequence[Engine],
    settings: BenchSettings,
    on_round: Callable[[], None] | None = None,
    clock_ns: Callable[[], int] = time.perf_counter_ns,
    cpu_clock_ns: Callable[[], int] = time.process_time_ns,
) -> tuple[list[BenchResult], list[Skipped]]:
    """Run the interleaved measurement; ``on_round`` is called after each timed round."""
    check_plan(engines, settings)
    plan, skipped = plan_batches(engines, settings.batches)
    labels = engine_labels(engines)
    if settings.cuda_graph:
        enable_cuda_graphs(engines)

    frames: dict[tuple[int, int, int, int], np.ndarray] = {}
    for batch, members in plan.items():
        for i in members:
            spec = engines[i].input_spec
            shape = (batch, spec.height, spec.width, spec.channels)
            if shape not in frames:
                frames[shape] = random_frames(shape, settings.seed)

    samples: dict[tuple[int, int], list[float]] = {(i, b): [] for b, members in plan.items() for i in members}
    run_p50s: dict[tuple[int, int], list[float]] = {key: [] for key in samples}
    gpu: dict[tuple[int, int], dict[str, list[float]]] = {key: {} for key in samples}
    cpu: dict[tuple[int, int], list[float]] = {key: [] for key in samples}

    for run in range(settings.repeat):
        for batch, members in plan.items():
            inputs = {}
            for i in members:
                spec = engines[i].input_spec
                inputs[i] = frames[(batch, spec.height, spec.width, spec.channels)]
            for i in members:
                for _ in range(settings.warmup):
                    engines[i].infer(inputs[i])
            log.info("run %d, batch %d: timing %s", run + 1, batch, ", ".join(labels[i] for i in members))
            block = _timed_block(engines, members, inputs, settings, on_round, clock_ns, cpu_clock_ns)
            for i in members:
                key = (i, batch)
                samples[key] += block[i][0]
                cpu[key] += block[i][2]
                run_p50s[key].append(float(np.percentile(block[i][0], 50)))
                for name, values in block[i][1].items():
                    gpu[key].setdefault(name, []).extend(values)

    results = [
        BenchResult(
            engine_index=i,
            engine=labels[i],
            batch=batch,
            samples_ms=np.asarray(samples[(i, batch)], dtype=np.float64),
            run_p50s_ms=run_p50s[(i, batch)],
            gpu_ms={name: np.asarray(v, dtype=np.float64) for name, v in gpu[(i, batch)].items()},
            cpu_ms=np.asarray(cpu[(i, batch)], dtype=np.float64),
        )
        for batch, members in plan.items()
        for i in members
    ]
    return results, skipped


def _timed_block(engines, members, inputs, settings, on_round, clock_ns, cpu_clock_ns):
    """One run at one batch size: round-robin timed calls until the iteration or time budget is spent."""
    wall = {i: [] for i in members}
    cpu = {i: [] for i in members}
    gpu = {i: {} for i in members}
    deadline_ns = None if settings.duration_s is None else clock_ns() + int(settings.duration_s * 1e9)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        rounds = 0
        while True:
            if settings.iterations is not None and rounds >= settings.iterations:
                break
            if deadline_ns is not None and rounds > 0 and clock_ns() >= deadline_ns:
                break
            for i in members:
                engine = engines[i]
                cpu_start = cpu_clock_ns()
                start = clock_ns()
                engine.infer(inputs[i])
                stop = clock_ns()
                cpu_stop = cpu_clock_ns()
                wall[i].append((stop - start) / 1e6)
                cpu[i].append((cpu_stop - cpu_start) / 1e6)
                timings = gpu_timings(engine)
                if timings:
                    for name, value in timings.items():
                        gpu[i].setdefault(name, []).append(value)
            rounds += 1
            if on_round is not None:
                on_round()
    finally:
        if gc_was_enabled:
            gc.enable()
    return {i: (wall[i], gpu[i], cpu[i]) for i in members}


def _jsonable(value: Any) -> Any:
    """describe() output made JSON-safe: paths and numpy scalars become strings/numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return str(value)
