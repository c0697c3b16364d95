"""``ard-edge run``: stream a camera (or a replay) through an engine to PASS/FAIL decisions.

Signal handling lives here, not in the library: the first SIGINT/SIGTERM stops acquisition and
lets the frames in flight drain to decisions; a second one exits at once, non-zero.
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
@click.option("--camera", "--source", "camera", required=True,
              help="Camera alias from ard-edge.yaml, folder:PATH or video:PATH.")
@click.option("--engine", "engine_path", required=True, type=click.Path(path_type=Path),
              help=".onnx, .engine or .plan (exported with the camera's channel count).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="ard-edge.yaml to read (default: ./ard-edge.yaml when present).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("ard-edge-run"),
              show_default=True, help="decisions.jsonl, summary.json and fail/ evidence go here (appended).")
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many captured frames.")
@click.option("--duration", "duration_s", type=FiniteFloat(min=0, min_open=True), help="Stop after S seconds.")
@click.option("--batch", type=click.IntRange(min=1), help="Frames per engine call (overrides runtime.batch).")
@click.option("--max-wait-ms", type=FiniteFloat(min=0, max=60_000),
              help="Longest a partial batch waits to fill (overrides runtime.max_wait_ms).")
@click.option("--fps", type=FiniteFloat(min=0, min_open=True), help="Replay pace for folder:/video: sources.")
@click.option("--loop", is_flag=True, help="Replay folder:/video: sources endlessly.")
@click.option("--engine-threads", type=click.IntRange(min=1),
              help="CPU threads for a CPU engine; cores - 1 leaves one to capture and preprocessing.")
def run(camera, engine_path, config_path, out, max_frames, duration_s, batch, max_wait_ms, fps, loop, engine_threads):
    """Stream camera frames to PASS/FAIL decisions until the frame/time limit or Ctrl-C."""
    from ard_edge import open_engine
    from ard_edge._io import folder_lock
    from ard_edge.camera import open_source
    from ard_edge.runtime import DecisionLog, EvidenceSaver, Pipeline, load_app_config
    from ard_edge.runtime.outputs import context_of, output_sinks

    app = load_app_config(config_path)
    settings = _with_overrides(app.runtime, batch=batch, max_wait_ms=max_wait_ms)
    with contextlib.ExitStack() as stack:
        stack.enter_context(folder_lock(out))  # before anything is appended: one run per folder
        engine = stack.enter_context(open_engine(engine_path, threads=engine_threads))
        source = stack.enter_context(open_source(camera, app.cameras, fps=fps, loop=loop))
        context = context_of(app, engine)  # model id, line and station for every decision
        sinks = [DecisionLog(out, settings.rotate_mb), EvidenceSaver.from_settings(out, settings),
                 *output_sinks(app, out, {source.name: source}, context), ConsoleStatus(sys.stderr)]
        pipeline = Pipeline(source, engine, settings, sinks, max_frames=max_frames, duration_s=duration_s,
                            context=context)
        with _stop_on_signals(pipeline):
            pipeline.start()
            summary = pipeline.join()
        _report(summary, out)


def _report(summary, out: Path) -> None:
    """Print the summary, write summary.json, and fail (exit 1) when the run or that write did.

    The summary is printed first: on a full disk it is the only account of what was not written.
    """
    from ard_edge.errors import OutputError, RunFailed
    from ard_edge.runtime import DECISIONS_NAME

    for line in summary.lines():
        click.echo(line)
    problems = [f"the run ended early: {summary.error}"] if summary.error else []
    try:
        summary.write(out / "summary.json")
    except OutputError as exc:
        problems.append(f"summary.json not written: {exc}")
    click.echo(f"decisions: {out / DECISIONS_NAME}; evidence: {out / 'fail'}/; summary: {out / 'summary.json'}")
    if problems:
        raise RunFailed(f"{summary.camera}: " + "; ".join(problems))


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
    """First SIGINT/SIGTERM: drain and finish normally. Second: exit now with 128 + signal number."""
    received: list[int] = []

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
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class ConsoleStatus(Sink):
    """The live status on stderr: redrawn in place about once a second on a terminal, a plain line
    every ``_PLAIN_STATUS_EVERY_S`` when stderr goes to a file or a pipe."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.is_tty = stream.isatty()
        self._last_plain_s = -float("inf")
        self._drawn = False

    def on_decision(self, decision, frame, result) -> None:
        pass  # the status carries the counts

    def on_status(self, status) -> None:
        line = format_status(status)
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
        + "".join(f" | {key[:-len('_queued')]} queued {value}" for key, value in status.sinks.items()
                  if key.endswith("_queued"))
    )
