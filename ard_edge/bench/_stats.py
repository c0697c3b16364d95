"""Summary statistics of timing samples: percentiles, coefficient of variation, ratios, run spread.

Pure functions of numbers so they are tested on known samples. Percentiles interpolate linearly
between the closest ranks (numpy's default), so the p50 of an even-sized sample is the mean of
the two middle values.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

PERCENTILES = (50, 90, 99)


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    """One quantity over the timed iterations, in milliseconds (per batch)."""

    count: int
    mean: float
    std: float  # sample standard deviation (n - 1); 0.0 for a single sample
    cv: float | None  # std / mean; None without at least two samples or with a zero mean
    min: float
    p50: float
    p90: float
    p99: float
    max: float

    def to_dict(self) -> dict[str, float | int | None]:
        return dataclasses.asdict(self)


def latency_stats(samples_ms: Sequence[float] | np.ndarray) -> LatencyStats:
    """Mean, spread and percentiles of ``samples_ms``; raises ValueError on an empty sample."""
    values = np.asarray(samples_ms, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("no samples")
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    p50, p90, p99 = (float(v) for v in np.percentile(values, PERCENTILES))
    return LatencyStats(
        count=int(values.size),
        mean=mean,
        std=std,
        cv=coefficient_of_variation(values),
        min=float(values.min()),
        p50=p50,
        p90=p90,
        p99=p99,
        max=float(values.max()),
    )


def coefficient_of_variation(samples: Sequence[float] | np.ndarray) -> float | None:
    """Sample standard deviation over mean: 0.05 means a typical call is 5 % off the mean."""
    values = np.asarray(samples, dtype=np.float64).reshape(-1)
    if values.size < 2:
        return None
    mean = float(values.mean())
    if mean == 0.0:
        return None
    return float(values.std(ddof=1)) / mean


def throughput_ips(batch: int, samples_ms: Sequence[float] | np.ndarray) -> float:
    """Images per second with one call in flight: ``batch * calls / sum of call times``."""
    values = np.asarray(samples_ms, dtype=np.float64).reshape(-1)
    total_ms = float(values.sum())
    return batch * values.size * 1e3 / total_ms if total_ms > 0 else math.inf


def ratio(value: float | None, baseline: float | None) -> float | None:
    """``value / baseline``, or None when either is missing or the baseline is zero."""
    if value is None or baseline is None or baseline == 0 or not math.isfinite(baseline):
        return None
    return float(value) / float(baseline)


@dataclasses.dataclass(frozen=True)
class RunSpread:
    """How much the p50 moved between repeated measurements (``--repeat K``)."""

    runs: int
    p50_ms: tuple[float, ...]  # one p50 per run, in run order
    p50_ms_median: float
    p50_ms_min: float
    p50_ms_max: float
    p50_spread_pct: float  # (max - min) / median * 100

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["p50_ms"] = list(self.p50_ms)
        return data


def run_spread(p50s_ms: Sequence[float]) -> RunSpread:
    """Median of per-run p50s and their spread; raises ValueError without runs."""
    values = [float(v) for v in p50s_ms]
    if not values:
        raise ValueError("no runs")
    median = float(np.median(values))
    low, high = min(values), max(values)
    spread = (high - low) / median * 100.0 if median > 0 else 0.0
    return RunSpread(
        runs=len(values),
        p50_ms=tuple(values),
        p50_ms_median=median,
        p50_ms_min=low,
        p50_ms_max=high,
        p50_spread_pct=spread,
    )
