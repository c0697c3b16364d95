"""``ard-edge run``: stream cameras (or replays) through engines to PASS/FAIL decisions.

Signal handling lives here, not in the library: the first SIGINT/SIGTERM stops acquisition and
lets the frames in flight drain to decisions; a second one exits at once, non-zero. SIGHUP
reloads the engines (a model swap, see :mod:`ard_edge.runtime.model_swap`), as does a new
version of an engine file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

import click

from ard_edge.cli._common import FiniteFloat
from ard_edge.runtime.sinks.base import Sink
from ard_edge.runtime.summary import format_ms

_PLAIN_STATUS_EVERY_S = 10.0  # status line period when stderr is a log file, not a terminal


@click.command("run")
@click.option("--camera", "--source", "cameras", multiple=True,
              help="Camera alias from ard-edge.yaml, folder:PATH or video:PATH; repeat it for several"
                   " cameras (default: every configured camera that names its engine).")
@click.option("--engine", "engine_path", type=click.Path(path_type=Path),
              help=".onnx, .engine, .plan (exported with the camera's channel count) or triton://HOST:PORT/MODEL, for the cameras"
                   " whose config names no engine of its own.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="ard-edge.yaml to read (default: ./ard-edge.yaml when present).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("ard-edge-run"),
              show_default=True, help="decisions.jsonl, summary.json and fail/ evidence go here (appended);"
                                      " with several cameras, in one folder per camera below it.")
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many captured frames (per camera).")
@click.option("--duration", "duration_s", type=FiniteFloat(min=0, min_open=True), help="Stop after S seconds.")
@click.option("--batch", type=click.IntRange(min=1), help="Frames per engine call (overrides runtime.batch).")
@click.option("--max-wait-ms", type=FiniteFloat(min=0, max=60_000),
              help="Longest a partial batch waits to fill (overrides runtime.max_wait_ms).")
@click.option("--fps", type=FiniteFloat(min=0, min_open=True), help="Replay pace for folder:/video: sources.")
@click.option("--loop", is_flag=True, help="Replay folder:/video: sources endlessly.")
@click.option("--engine-threads", type=click.IntRange(min=1),
              help="CPU threads for a CPU engine; cores - 1 leaves one to capture and preprocessing.")
@click.option("--http", "http_listen", metavar="HOST:PORT",
              help="Serve the live page, /metrics and health endpoints here (overrides http.listen).")
@click.option("--keep-serving", is_flag=True, help="With --http: keep serving after the run until Ctrl-C.")
def run(cameras, engine_path, config_path, out, max_frames, duration_s, batch, max_wait_ms, fps, loop, engine_threads,
        http_listen, keep_serving):
    """Stream camera frames to PASS/FAIL decisions until the frame/time limit or Ctrl-C."""
    import functools

    from ard_edge import open_engine
    from ard_edge._io import folder_lock
    from ard_edge.camera import source_from_spec
    from ard_edge.cli._live import serve_until_signal, start_live
    from ard_edge.runtime import load_app_config
    from ard_edge.runtime.multi import CameraJob, MultiRun
    from ard_edge.runtime.outputs import context_of, output_sinks

    app = load_app_config(config_path)
    settings = _with_overrides(app.runtime, batch=batch, max_wait_ms=max_wait_ms)
    plan = _camera_plan(cameras, engine_path, app.cameras)
    folders = {spec: out if len(plan) == 1 else out / camera_folder(spec) for spec, _ in plan}
    with contextlib.ExitStack() as stack:
        stack.enter_context(folder_lock(out))  # before anything is appended: one run per folder
        live = start_live(stack, app.http, http_listen)
        jobs = []
        for spec, engine_file in plan:
            source = source_from_spec(spec, app.cameras, fps=fps, loop=loop)  # its pipeline opens and closes it
            sinks = functools.partial(_camera_sinks, folders[spec], settings, live)
            jobs.append(CameraJob(source, engine_file, sinks))
        # MQTT, webhook, OPC UA (docs/outputs.md): one of each for all cameras, queues under out/outbox/
        outputs = output_sinks(app, out, {job.source.name: job.source for job in jobs})
        multi = MultiRun(jobs, functools.partial(open_engine, threads=engine_threads), settings,
                         shared=[*outputs, ConsoleStatus(sys.stderr)], max_frames=max_frames, duration_s=duration_s,
                         context=context_of(app))
        with _stop_on_signals(multi):
            multi.start()
            summaries = multi.join()
        _report(summaries, [folders[spec] for spec, _ in plan], out)
        if live and keep_serving:
            serve_until_signal(live)


def _camera_sinks(folder: Path, settings, live):
    from ard_edge.runtime import DecisionLog, EvidenceSaver

    return [DecisionLog(folder, settings.rotate_mb), EvidenceSaver.from_settings(folder, settings),
            *([live.board.sink(folder)] if live else [])]


def _camera_plan(cameras: tuple[str, ...], engine_path: Path | None, configured) -> list[tuple[str, Path]]:
    """(source spec, engine file) of every camera to run: the given ones, else every configured one with an engine."""
    from ard_edge.errors import ConfigError

    if not cameras:
        cameras = tuple(alias for alias, config in configured.items() if config.engine is not None or engine_path)
        if not cameras:
            raise ConfigError("no camera to run: give --camera (and --engine), or name an engine under"
                              " cameras.<alias>.engine in ard-edge.yaml")
    if len(set(cameras)) != len(cameras):
        raise ConfigError(f"--camera: each camera once, got {', '.join(cameras)}")
    plan = []
    for spec in cameras:
        own = configured[spec].engine if spec in configured else None
        if own is None and engine_path is None:
            raise ConfigError(f"{spec}: no engine: give --engine, or set cameras.{spec}.engine in ard-edge.yaml")
        plan.append((spec, own or engine_path))
    return plan


def camera_folder(spec: str) -> str:
    """A folder name for a camera's output: its alias, or its replay spec made file-name safe."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in spec)


def _report(summaries, folders: list[Path], out: Path) -> None:
    """Print the summaries, write summary.json, and fail (exit 1) when a camera's run or a write did.

    The summary is printed first: on a full disk it is the only account of what was not written.
    Several cameras: each folder gets its camera's summary.json, and ``out/summary.json`` holds
    them all under ``cameras`` with their ``total``.
    """
    from ard_edge._io import write_json
    from ard_edge.errors import OutputError, RunFailed
    from ard_edge.runtime import DECISIONS_NAME
    from ard_edge.runtime.summary import total_line, totals

    problems = []
    for summary, folder in zip(summaries, folders):
        for line in summary.lines():
            click.echo(line)
        if summary.error:
            problems.append(f"{summary.camera}: the run ended early: {summary.error}")
        try:
            summary.write(folder / "summary.json")
        except OutputError as exc:
            problems.append(f"{summary.camera}: summary.json not written: {exc}")
        click.echo(f"decisions: {folder / DECISIONS_NAME}; evidence: {folder / 'fail'}/; summary: {folder / 'summary.json'}")
    if len(summaries) > 1:
        total = totals(summaries)
        click.echo(total_line(total))
        try:
            write_json(out / "summary.json", {"cameras": {s.camera: s.to_dict() for s in summaries}, "total": total})
        except OutputError as exc:
            problems.append(f"summary.json not written: {exc}")
    if problems:
        raise RunFailed("; ".join(problems))


def _with_overrides(settings, **overrides):
    """The ``runtime:`` section with the command-line values that were given."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return settings
    settings = dataclasses.replace(settings, **given)
    settings.validate("runtime")
    return settings


@contextlib.contextmanager
def _stop_on_signals(pipeline):
    """First SIGINT/SIGTERM: drain and finish normally. Second: exit now with 128 + signal number.
    SIGHUP: reload the engines (``pipeline.reload``)."""
    received: list[int] = []

    def reload(signum, _frame):
        click.echo("\nSIGHUP: looking for new engine versions (model swap between batches)", err=True)
        pipeline.reload()

    def handler(signum, _frame):
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            click.echo(f"\n{name}: stopping acquisition, draining the frames in flight"
                       " (send it again to force exit)", err=True)
            pipeline.stop()
            return
        click.echo(f"\n{name} again: forced exit; frames in flight have no decision", err=True)
        os._exit(128 + signum)  # skip cleanup that may be what hangs (a driver, a full disk)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, reload)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class ConsoleStatus(Sink):
    """The live status on stderr: redrawn in place about once a second on a terminal, a plain line
    every ``_PLAIN_STATUS_EVERY_S`` when stderr goes to a file or a pipe. With several cameras the
    line holds the latest status of each."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.is_tty = stream.isatty()
        self._last_plain_s = -float("inf")
        self._drawn = False
        self._latest: dict = {}  # camera -> its latest status

    def on_decision(self, decision, frame, result) -> None:
        pass  # the status carries the counts

    def on_status(self, status) -> None:
        self._latest[status.camera] = status
        line = " || ".join(format_status(latest) for latest in self._latest.values())
        if self.is_tty:
            self.stream.write("\r\x1b[2K" + line)
            self._drawn = True
        elif time.monotonic() - self._last_plain_s >= _PLAIN_STATUS_EVERY_S:
            self._last_plain_s = time.monotonic()
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def format_status(status) -> str:
    d = status.decisions
    return (
        f"{status.camera} {status.elapsed_s:6.0f} s | {status.fps:6.1f} fps | latency p50 {format_ms(status.latency_p50_ms, 1)}"
        f" p99 {format_ms(status.latency_p99_ms, 1)} ms | PASS {d['PASS']} FAIL {d['FAIL']} ERROR {d['ERROR']}"
        f" | dropped {status.dropped}"
        # network outputs (docs/outputs.md): what waits on disk for a broker or endpoint
        + "".join(f" | {key[:-len('_queued')]} queued {value}" for key, value in status.sink_stats.items()
                  if key.endswith("_queued"))
    )
