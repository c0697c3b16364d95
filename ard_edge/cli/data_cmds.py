"""``ard-edge synth``: write a synthetic inspection dataset."""

from __future__ import annotations

import click

from ard_edge.cli._common import progress_bar
from ard_edge.data import TEXTURES, write_synthetic_dataset
from ard_edge.errors import OutputError


@click.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--num-train", type=click.IntRange(min=1), default=200, show_default=True,
              help="Good training images.")
@click.option("--num-test", type=click.IntRange(min=0), default=60, show_default=True,
              help="Test images, about half with defects.")
@click.option("--image-size", type=click.IntRange(min=32), default=256, show_default=True,
              help="Side of the square images in pixels.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Same seed, same bytes.")
@click.option("--texture", type=click.Choice(TEXTURES), default="brick", show_default=True,
              help="scikit-image texture used as the surface.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it already holds a dataset.")
def synth(out: str, num_train: int, num_test: int, image_size: int, seed: int, texture: str,
          overwrite: bool) -> None:
    """Write a synthetic inspection dataset to OUT in MVTec AD layout."""
    # disable=None: no bar when stderr is not a terminal (logs, CI).
    with progress_bar(num_train + num_test, "synth", "img", leave=False, disable=None) as bar:
        try:
            summary = write_synthetic_dataset(
                out, num_train=num_train, num_test=num_test, image_size=image_size, seed=seed,
                texture=texture, overwrite=overwrite, progress=bar.update,
            )
        except OSError as exc:  # synth reads nothing of the user's: an OSError is the output's
            raise OutputError(f"cannot write the dataset {out}: {exc.strerror or exc}") from exc
    defects = ", ".join(f"{count} {name}" for name, count in summary.num_defects.items())
    click.echo(
        f"wrote {summary.out_dir}: {summary.num_train} train, {num_test} test "
        f"({summary.num_test_good} good, {defects}), {image_size}x{image_size} {texture}, seed {seed}"
    )
