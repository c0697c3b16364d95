"""``ard-edge capture``: collect training images from a camera (or a recording) with a progress bar.

The first SIGINT/SIGTERM ends the capture after the image being written; what was saved stays.
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import click

from ard_edge.cli._common import FiniteFloat, progress_bar


@click.command("capture")
@click.option("--camera", "--source", "camera", required=True,
              help="Camera alias from ard-edge.yaml, folder:PATH or video:PATH.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder for the PNG images and capture.jsonl (e.g. DATASET/train/good).")
@click.option("--frames", type=click.IntRange(min=1), default=200, show_default=True, help="Images to save.")
@click.option("--every-ms", type=FiniteFloat(min=0), default=500.0, show_default=True,
              help="Least time between two images of a free-running camera; a triggered camera keeps one per trigger.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="ard-edge.yaml to read (default: ./ard-edge.yaml when present).")
@click.option("--append", is_flag=True, help="Add images to a folder that already holds some (never overwrites).")
@click.option("--fps", type=FiniteFloat(min=0, min_open=True), help="Replay pace for folder:/video: sources.")
def capture(camera, out, frames, every_ms, config_path, append, fps):
    """Save camera frames (ROI applied) as lossless PNG with a manifest, to train on."""
    from ard_edge.camera import source_from_spec
    from ard_edge.runtime import load_app_config
    from ard_edge.runtime.capture import Capture, check_out_folder

    app = load_app_config(config_path)
    source = source_from_spec(camera, app.cameras, fps=fps)
    check_out_folder(out, append)
    with source.open(), progress_bar(frames, f"capture {camera}", unit="img") as bar:
        job = Capture(source, out, frames, every_ms, on_saved=lambda _stats: bar.update(1))
        with _stop_on_signals(job):
            stats = job.run()
    click.echo(stats.line(out))


@contextlib.contextmanager
def _stop_on_signals(job):
    def handler(signum, _frame):
        click.echo(f"\n{signal.Signals(signum).name}: stopping; the images saved so far stay", err=True)
        job.stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
