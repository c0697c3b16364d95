"""``ard-edge bench``: engine latency/throughput (raw, interleaved) or capture-to-decision (--pipeline)."""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path

import click

from ard_edge.cli._common import FiniteFloat, progress_bar


@click.command("bench")
@click.option("--engine", "engine_paths", multiple=True, required=True, type=click.Path(path_type=Path),
              help=".onnx, .ckpt, .engine, .plan or triton://HOST:PORT/MODEL; repeat it to compare (the first is the baseline of the ratios).")
@click.option("--batch", "batch_text", default="1", show_default=True,
              help="Comma-separated batch sizes, e.g. 1,4,8. With several, an engine is skipped (noted) at "
                   "sizes outside its range; a size no engine takes is an error.")
@click.option("--iterations", type=click.IntRange(min=1),
              help="Timed calls per engine, batch and run; frames per run with --pipeline. [50]")
@click.option("--duration", "duration_s", type=FiniteFloat(min=0, min_open=True),
              help="Seconds per batch block of each run (per pipeline run) instead of --iterations.")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True,
              help="Untimed calls per engine before each batch block, discarded.")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run the whole interleaved measurement K times; report the median p50 and its spread.")
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads for ONNX Runtime (intra-op), OpenVINO and PyTorch engines. [one per physical core]")
@click.option("--channels", type=click.Choice(["1", "3"]), help="Input channels of .ckpt engines. [3]")
@click.option("--cuda-graph", is_flag=True, help="Capture CUDA graphs (engines that support it; error otherwise).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random input frames.")
@click.option("--pipeline", is_flag=True, help="Measure capture-to-decision through the runtime (needs --camera).")
@click.option("--camera", help="With --pipeline: camera alias (e.g. cam0), folder:PATH or video:PATH.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="With --pipeline: ard-edge.yaml (cameras, runtime). [./ard-edge.yaml when present]")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report as JSON (keys: docs/bench-json.md).")
@click.option("--markdown", "markdown_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report as markdown.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG: latency boxes per engine and batch, throughput vs batch (raw mode).")
def bench(engine_paths, batch_text, iterations, duration_s, warmup, repeat, threads, channels, cuda_graph, seed,
          pipeline, camera, config_path, json_out, markdown_out, plot_out):
    """Measure engine latency and throughput, or capture-to-decision latency with --pipeline."""
    from ard_edge.bench import DEFAULT_ITERATIONS, BenchSettings, parse_batches, total_rounds
    from ard_edge.errors import ConfigError, require

    if iterations is not None and duration_s is not None:
        raise ConfigError("give either --iterations or --duration, not both")
    if pipeline and not camera:
        raise ConfigError("--pipeline needs --camera ALIAS (or folder:PATH, video:PATH)")
    if not pipeline and (camera or config_path):
        raise ConfigError("--camera and --config apply to --pipeline only")
    if pipeline and cuda_graph:
        raise ConfigError("--cuda-graph applies to raw engine mode, not --pipeline")
    if pipeline and plot_out:
        raise ConfigError("--plot needs raw engine mode: pipeline runs keep percentiles, not per-call samples")
    if plot_out:
        require("matplotlib", "plot")  # fail before measuring, not after
    settings = BenchSettings(
        batches=parse_batches(batch_text),
        iterations=iterations if iterations is not None or duration_s is not None else DEFAULT_ITERATIONS,
        duration_s=duration_s,
        warmup=warmup,
        repeat=repeat,
        cuda_graph=cuda_graph,
        seed=seed,
    )
    settings.validate()
    command = _command_line(engine_paths, settings, threads, channels, pipeline, camera, config_path,
                            json_out, markdown_out, plot_out)

    with contextlib.ExitStack() as stack:
        from ard_edge.bench import check_plan, open_engines

        engines = open_engines(engine_paths, stack, threads=threads, channels=int(channels) if channels else None)
        check_plan(engines, settings)  # batch and --cuda-graph errors before the progress bar starts
        if pipeline:
            report = _run_pipeline(engines, camera, config_path, settings, command)
        else:
            from ard_edge.bench import run_raw_bench

            with progress_bar(total_rounds(settings), "bench", "round") as bar:
                report = run_raw_bench(engines, settings, on_round=lambda: bar.update(1), command=command)

    click.echo(report.render_table())
    if json_out:
        report.write_json(json_out)
        click.echo(f"wrote {json_out}")
    if markdown_out:
        report.write_markdown(markdown_out)
        click.echo(f"wrote {markdown_out}")
    if plot_out:
        from ard_edge.bench import plot_report

        plot_report(report, plot_out)
        click.echo(f"wrote {plot_out}")


def _run_pipeline(engines, camera, config_path, settings, command):
    from ard_edge.bench import run_pipeline_bench
    from ard_edge.runtime import load_app_config
    from ard_edge.runtime.sinks.base import Sink

    class _ProgressSink(Sink):
        def __init__(self, bar):
            self.bar = bar

        def on_decision(self, decision, frame, result) -> None:
            self.bar.update(1)

    app = load_app_config(config_path)
    runs = len(engines) * len(settings.batches) * settings.repeat
    total = None if settings.iterations is None else settings.iterations * runs
    with progress_bar(total, "bench --pipeline", "frame") as bar:
        return run_pipeline_bench(engines, camera, settings, runtime=app.runtime, cameras=app.cameras,
                                  make_sinks=lambda: [_ProgressSink(bar)], command=command)


def _command_line(engine_paths, settings, threads, channels, pipeline, camera, config_path,
                  json_out, markdown_out, plot_out) -> str:
    """The command as parsed, defaults spelled out, so a report says exactly how to reproduce it."""
    parts = ["ard-edge", "bench"]
    for path in engine_paths:
        parts += ["--engine", str(path)]
    parts += ["--batch", ",".join(str(b) for b in settings.batches)]
    if settings.iterations is not None:
        parts += ["--iterations", str(settings.iterations)]
    else:
        parts += ["--duration", f"{settings.duration_s:g}"]
    parts += ["--warmup", str(settings.warmup), "--repeat", str(settings.repeat)]
    if settings.seed:
        parts += ["--seed", str(settings.seed)]
    for flag, value in (("--threads", threads), ("--channels", channels), ("--camera", camera),
                        ("--config", config_path), ("--json", json_out), ("--markdown", markdown_out),
                        ("--plot", plot_out)):
        if value is not None:
            parts += [flag, str(value)]
    if settings.cuda_graph:
        parts.append("--cuda-graph")
    if pipeline:
        parts.append("--pipeline")
    return shlex.join(parts)
