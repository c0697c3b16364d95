"""``ard-edge export``."""

from __future__ import annotations

from pathlib import Path

import click

from ard_edge._graph import DEFAULT_OPSET


def _batch(value: str) -> int | None:
    if value == "dynamic":
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"expected a positive integer or 'dynamic', got {value!r}") from None


@click.command()
@click.option("--model", "checkpoint", required=True, type=click.Path(path_type=Path), help="RUN_DIR/model.ckpt")
@click.option("--out", type=click.Path(path_type=Path), help="ONNX file to write. [export/<run name>.onnx]")
@click.option("--channels", type=click.Choice(["1", "3"]), default="3", show_default=True,
              help="Channels the camera delivers: 1 mono (replicated to RGB inside the graph), 3 colour.")
@click.option("--batch", default="1", show_default=True, help="Fixed batch size, or 'dynamic'.")
@click.option("--opset", type=int, default=DEFAULT_OPSET, show_default=True)
def export(checkpoint, out, channels, batch, opset):
    """Export a checkpoint to one fused ONNX graph: uint8 frames in, map/score/decision out."""
    from ard_edge.export import export_onnx

    out = out or Path("export") / f"{checkpoint.parent.name or checkpoint.stem}.onnx"
    metadata = export_onnx(checkpoint, out, channels=int(channels), batch=_batch(batch), opset=opset)
    spec = metadata["input"]
    click.echo(
        f"wrote {out}: frames uint8 [{spec['batch']}, {spec['height']}, {spec['width']}, {spec['channels']}] -> "
        f"anomaly_map, score, normalized_score, is_anomalous (threshold {metadata['threshold']:.4f})"
    )
