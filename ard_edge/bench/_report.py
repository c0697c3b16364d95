"""The benchmark report: one object, rendered as JSON, a terminal table and markdown.

The JSON keys are a contract (``docs/bench-json.md``); bump :data:`SCHEMA_VERSION` when one
changes meaning or goes away (adding a key is compatible).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ard_edge._io import json_safe
from ard_edge.bench._pipeline import PipelineResult
from ard_edge.bench._raw import GPU_SERIES, BenchResult, Skipped
from ard_edge.bench._stats import latency_stats, ratio
from ard_edge.bench._config import BenchSettings
from ard_edge.runtime.summary import format_ms

SCHEMA = "ard-edge-bench"
SCHEMA_VERSION = 1
HIGH_CV = 0.10  # a CV above this gets a note: the samples are too noisy to compare small differences

NOISE_METHOD = (
    "Warm-up calls are discarded; engines are timed interleaved, one call each per round "
    "(A B A B ...), so machine drift hits all alike; Python's garbage collector is paused while "
    "timing; every call is timed with time.perf_counter_ns (wall) and time.process_time_ns (CPU "
    "time of the process, which leaves out most of the time spent waiting for a busy CPU); the "
    "CV (std/mean) of each series is reported, and --repeat K reruns the whole interleaved "
    "measurement K times and reports the median of the per-run p50s and their spread."
)
PIPELINE_NOISE_METHOD = (
    "Warm-up calls are discarded; engines stream the source in turns, run by run (A B A B ...); "
    "latencies are the runtime's capture-to-decision percentiles; --repeat K reports the median "
    "over the K runs and the spread of their p50s."
)


@dataclasses.dataclass
class BenchReport:
    """Everything one ``ard-edge bench`` call measured, and where."""

    mode: str  # "raw" or "pipeline"
    settings: BenchSettings
    environment: dict[str, Any]
    engines: list[dict[str, Any]]
    results: list[BenchResult] = dataclasses.field(default_factory=list)
    pipeline: list[PipelineResult] = dataclasses.field(default_factory=list)
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    command: str | None = None  # the command line that produced it
    loadavg_end: list[float] | None = None

    def __post_init__(self) -> None:
        self.notes = list(self.notes) + self._noise_notes()

    def _noise_notes(self) -> list[str]:
        notes = [f"{s.engine} skipped at batch {s.batch}: {s.reason}" for s in self.skipped]
        for result in self.results:
            cv = result.latency.cv
            if cv is not None and cv > HIGH_CV:
                notes.append(
                    f"{result.engine} batch {result.batch}: CV {cv:.0%} (> {HIGH_CV:.0%}): noisy samples; "
                    f"compare p50s, or rerun with --repeat"
                )
        cpus = self.environment.get("cpu_affinity_count") or self.environment.get("cpu_logical_cores")
        load = self.environment.get("loadavg")
        if cpus and load and load[0] > 0.5 * cpus:
            robust = "; the interleaved ratios are the robust result" if self.mode == "raw" else ""
            notes.append(
                f"the machine was busy before the run (1-min load {load[0]:.2f} on {cpus} usable CPUs): "
                f"absolute numbers are pessimistic{robust}"
            )
        return notes

    def ratios(self, result: BenchResult) -> dict[str, Any] | None:
        """Throughput and p50 against the first engine at the same batch size (None if it did not run there)."""
        baseline = next((r for r in self.results if r.engine_index == 0 and r.batch == result.batch), None)
        if baseline is None:
            return None
        return {
            "baseline": baseline.engine,
            "throughput_ratio": ratio(result.throughput_ips, baseline.throughput_ips),
            "p50_ratio": ratio(result.latency.p50, baseline.latency.p50),
        }

    def to_dict(self) -> dict[str, Any]:
        settings = self.settings
        return json_safe({
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "mode": self.mode,
            "command": self.command,
            "settings": {
                "batches": list(settings.batches),
                "iterations": settings.iterations,
                "duration_s": settings.duration_s,
                "warmup": settings.warmup,
                "repeat": settings.repeat,
                "seed": settings.seed,
                "cuda_graph": settings.cuda_graph,
            },
            "environment": self.environment,
            "noise": {
                "method": NOISE_METHOD if self.mode == "raw" else PIPELINE_NOISE_METHOD,
                "timer": "time.perf_counter_ns",
                "cpu_timer": "time.process_time_ns",
                "interleaved": True,
                "warmup_discarded": settings.warmup,
                "gc_paused": self.mode == "raw",
                "repeat": settings.repeat,
                "high_cv_threshold": HIGH_CV,
                "loadavg_start": self.environment.get("loadavg"),
                "loadavg_end": self.loadavg_end,
            },
            "engines": self.engines,
            "results": [self._result_dict(r) for r in self.results],
            "pipeline": [p.to_dict() for p in self.pipeline],
            "skipped": [dataclasses.asdict(s) for s in self.skipped],
            "notes": self.notes,
        })

    def _result_dict(self, result: BenchResult) -> dict[str, Any]:
        stats = result.latency
        gpu = {name: latency_stats(result.gpu_ms[name]).to_dict() for name in GPU_SERIES if len(result.gpu_ms.get(name, ())) > 0}
        return {
            "engine": result.engine,
            "engine_index": result.engine_index,
            "batch": result.batch,
            "iterations": stats.count,
            "latency_ms": stats.to_dict(),
            "cpu_ms": latency_stats(result.cpu_ms).to_dict() if result.cpu_ms is not None and len(result.cpu_ms) else None,
            "throughput_ips": result.throughput_ips,
            "vs_first": self.ratios(result),
            "repeat": result.spread.to_dict(),
            "gpu": gpu or None,
        }

    # -- text renderings

    def table_rows(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the results table (shared by the terminal and markdown)."""
        if self.mode == "pipeline":
            return self._pipeline_rows()
        gpu = any(r.gpu_ms for r in self.results)
        repeat = self.settings.repeat > 1
        header = ["engine", "batch", "iters", "mean ms", "p50 ms", "p90 ms", "p99 ms", "max ms", "CV", "img/s",
                  "img/s vs first", "p50 vs first", "CPU p50 ms"]
        if repeat:
            header.append(f"p50 median of {self.settings.repeat} runs (spread)")
        if gpu:
            header += ["host latency p50 ms", "GPU compute p50 ms"]
        rows = []
        for result in self.results:
            s = result.latency
            ratios = self.ratios(result) or {}
            row = [result.engine, str(result.batch), str(s.count), _ms(s.mean), _ms(s.p50), _ms(s.p90), _ms(s.p99),
                   _ms(s.max), _pct(s.cv), f"{result.throughput_ips:.1f}",
                   _x(ratios.get("throughput_ratio")), _x(ratios.get("p50_ratio")), _cpu_p50(result)]
            if repeat:
                spread = result.spread
                row.append(f"{_ms(spread.p50_ms_median)} ({spread.p50_spread_pct:.1f}%)")
            if gpu:
                for name in ("host_latency_ms", "gpu_compute_ms"):
                    values = result.gpu_ms.get(name)
                    row.append(_ms(latency_stats(values).p50) if values is not None and len(values) else "-")
            rows.append(row)
        return header, rows

    def _pipeline_rows(self) -> tuple[list[str], list[list[str]]]:
        header = ["engine", "camera", "batch", "frames", "p50 ms", "p90 ms", "p99 ms", "max ms", "engine p50 ms",
                  "frames/s", "dropped"]
        if self.settings.repeat > 1:
            header.append(f"p50 spread over {self.settings.repeat} runs")
        rows = []
        for p in self.pipeline:
            d = p.to_dict()
            lat = d["latency_ms"]
            row = [p.engine, p.camera, str(p.batch), str(sum(d["decisions"].values())), _ms(lat["p50"]),
                   _ms(lat["p90"]), _ms(lat["p99"]), _ms(lat["max"]), _ms(d["engine_ms_p50"]),
                   "-" if d["throughput_fps"] is None else f"{d['throughput_fps']:.1f}", str(d["dropped"])]
            if self.settings.repeat > 1:
                row.append("-" if d["repeat"] is None else f"{d['repeat']['p50_spread_pct']:.1f}%")
            rows.append(row)
        return header, rows

    def environment_lines(self) -> list[tuple[str, str]]:
        env = self.environment
        versions = env.get("versions", {})
        power = env.get("jetson_power_mode")
        lines = [
            ("date (UTC)", str(env.get("date_utc"))),
            ("CPU", f"{env.get('cpu_model')}: {env.get('cpu_physical_cores')} physical / "
                    f"{env.get('cpu_logical_cores')} logical cores, affinity {env.get('cpu_affinity_count')}"),
            ("load average", " ".join(str(v) for v in env.get("loadavg") or []) or "n/a"),
            ("GPU", str(env.get("gpu_summary"))),
            ("Jetson power mode", "n/a" if power is None else f"{power.get('name')} (id {power.get('id')})"),
            ("OS / Python", f"{env.get('os')} / {env.get('python')}"),
            ("versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v) or "n/a"),
        ]
        for engine in self.engines:
            threads = "" if engine.get("threads") is None else f", {engine['threads']} threads"
            graph = ", CUDA graph" if engine.get("cuda_graph") else ""
            # OpenVINO: the precision its float layers really run in (bf16 by default on some CPUs),
            # and the layers an IR types lower itself (mixed: the bank's search in bf16).
            described = engine.get("describe", {})
            runs = described.get("inference_precision")
            lowered = [f"{count} layers {name}" for name, count in (described.get("runtime_precisions") or {}).items()
                       if name in ("bf16", "f16") and name != runs]
            runs = f" (runs {', '.join([runs, *lowered])})" if runs else ""
            spec = engine["input"]
            lines.append((f"engine {engine['index']}", f"{engine['label']}: {engine['backend']} {engine['precision']}"
                          f"{runs}, {spec['height']}x{spec['width']}x{spec['channels']}{threads}{graph} ({engine['path']})"))
        return lines

    def render_table(self) -> str:
        """The terminal report: environment, results table, notes."""
        header, rows = self.table_rows()
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
        out = [f"{key + ':':<19} {value}" for key, value in self.environment_lines()]
        out.append("")
        out.append("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths))))
        for row in rows:
            out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        out += [f"note: {note}" for note in self.notes]
        return "\n".join(out)

    def render_markdown(self) -> str:
        """Environment, results table, noise handling and notes as GitHub markdown."""
        header, rows = self.table_rows()
        out = ["### Environment", "", "| | |", "|---|---|"]
        out += [f"| {key} | {_cell(value)} |" for key, value in self.environment_lines()]
        out += ["", f"### Results ({'ms per batch' if self.mode == 'raw' else 'capture to decision, ms per frame'})", ""]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
        out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
        out += ["", "### Noise handling", "", NOISE_METHOD if self.mode == "raw" else PIPELINE_NOISE_METHOD]
        if self.settings.iterations is not None:
            out.append(f"Warm-up {self.settings.warmup} calls, {self.settings.iterations} timed "
                       f"{'calls per engine and batch' if self.mode == 'raw' else 'frames'} per run, "
                       f"{self.settings.repeat} run(s).")
        else:
            out.append(f"Warm-up {self.settings.warmup} calls, {self.settings.duration_s:g} s per "
                       f"{'batch block' if self.mode == 'raw' else 'run'}, {self.settings.repeat} run(s).")
        if self.notes:
            out += ["", "### Notes", ""] + [f"- {_cell(note)}" for note in self.notes]
        if self.command:
            out += ["", "Command:", "", "```", self.command, "```"]
        return "\n".join(out) + "\n"

    def write_json(self, path: str | Path) -> None:
        from ard_edge._io import write_json

        write_json(path, self.to_dict())

    def write_markdown(self, path: str | Path) -> None:
        from ard_edge._io import atomic_open

        with atomic_open(path) as handle:
            handle.write(self.render_markdown())


def _cpu_p50(result: BenchResult) -> str:
    return _ms(latency_stats(result.cpu_ms).p50) if result.cpu_ms is not None and len(result.cpu_ms) else "-"


def _ms(value: float | None) -> str:
    """Three significant digits or so: bench tables span 1 ms to seconds."""
    return format_ms(value, 1 if value is not None and value >= 100 else 2)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")

