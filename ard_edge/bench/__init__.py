"""Benchmarks: engine latency and throughput (raw, interleaved) and capture-to-decision (pipeline).

Library code only measures and renders; the progress bar and the printing live in
``ard_edge.cli.bench_cmds``. Example::

    import contextlib
    from ard_edge.bench import BenchSettings, open_engines, run_raw_bench

    with contextlib.ExitStack() as stack:
        engines = open_engines(["a.onnx", "b.onnx"], stack)
        report = run_raw_bench(engines, BenchSettings(batches=(1, 8), iterations=100))
    print(report.render_table())
    report.write_json("bench.json")
"""

from ard_edge.bench._environment import collect_environment
from ard_edge.bench._pipeline import PipelineResult, measure_pipeline
from ard_edge.bench._plot import plot_report
from ard_edge.bench._raw import BenchResult, Skipped, check_plan, gpu_timings, measure, plan_batches, random_frames, total_rounds
from ard_edge.bench._report import SCHEMA, SCHEMA_VERSION, BenchReport
from ard_edge.bench._run import engine_options, open_engines, run_pipeline_bench, run_raw_bench
from ard_edge.bench._stats import LatencyStats, RunSpread, coefficient_of_variation, latency_stats, ratio, run_spread, throughput_ips
from ard_edge.bench._config import DEFAULT_ITERATIONS, BenchSettings, parse_batches

__all__ = [
    "DEFAULT_ITERATIONS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "BenchReport",
    "BenchResult",
    "BenchSettings",
    "LatencyStats",
    "PipelineResult",
    "RunSpread",
    "Skipped",
    "check_plan",
    "coefficient_of_variation",
    "collect_environment",
    "engine_options",
    "gpu_timings",
    "latency_stats",
    "measure",
    "measure_pipeline",
    "open_engines",
    "parse_batches",
    "plan_batches",
    "plot_report",
    "random_frames",
    "ratio",
    "run_pipeline_bench",
    "run_raw_bench",
    "run_spread",
    "throughput_ips",
]
