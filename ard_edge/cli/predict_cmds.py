"""``ard-edge predict``."""

from __future__ import annotations

from pathlib import Path

import click

from ard_edge.cli._common import progress_bar

_TABLE_ROWS = 40


@click.command()
@click.option("--engine", "engine_path", required=True, type=click.Path(path_type=Path), help=".onnx, .ckpt, .engine, .plan or triton://HOST:PORT/MODEL")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("predictions"), show_default=True)
@click.option("--channels", type=click.Choice(["1", "3"]), help="Input channels for a .ckpt engine. [3]")
def predict(engine_path, inputs, out, channels):
    """Score image files or folders; write decisions and heatmap overlays to --out."""
    from ard_edge import open_engine
    from ard_edge.runtime.predict import PREDICTIONS_NAME, collect_images, predict_files

    from ard_edge._io import ensure_folder

    options = {"channels": int(channels)} if channels and engine_path.suffix == ".ckpt" else {}
    paths = collect_images(inputs)
    ensure_folder(out / "heatmaps")  # an unwritable --out fails before the engine loads
    with open_engine(engine_path, **options) as engine, progress_bar(len(paths), "predict", "img") as bar:
        predictions = predict_files(engine, paths, out, on_batch=bar.update)
    _print_summary(predictions)
    click.echo(f"decisions: {out / PREDICTIONS_NAME}; heatmaps: {out / 'heatmaps'}/")


def _print_summary(predictions) -> None:
    shown = predictions if len(predictions) <= _TABLE_ROWS else [p for p in predictions if p.verdict != "PASS"][:_TABLE_ROWS]
    if shown:
        width = min(max(len(p.path) for p in shown), 60)
        click.echo(f"{'image':<{width}}  {'score':>8}  {'norm':>5}  verdict")
        for p in shown:
            if p.error:
                click.echo(f"{p.path[-width:]:<{width}}  {'-':>8}  {'-':>5}  ERROR ({p.error})")
            else:
                click.echo(f"{p.path[-width:]:<{width}}  {p.score:8.4f}  {p.normalized_score:5.2f}  {p.verdict}")
    counts = {verdict: sum(p.verdict == verdict for p in predictions) for verdict in ("PASS", "FAIL", "ERROR")}
    click.echo(f"{len(predictions)} images: {counts['PASS']} PASS, {counts['FAIL']} FAIL"
               + (f", {counts['ERROR']} ERROR" if counts["ERROR"] else ""))
