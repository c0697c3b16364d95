"""Terminal helpers shared by the commands: progress bars live here, never in library code."""

from __future__ import annotations

import math
import sys

import click


def progress_bar(total: int | None, desc: str, unit: str = "it", **kwargs):
    """A tqdm bar on stderr; quiet (no redraws) when stderr is not a terminal.

    In a log it first shows after a few seconds, so a command that fails at once prints its
    one error line alone.
    """
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5 if tty else 30.0,
        delay=0.0 if tty else 3.0,
        **kwargs,
    )


class FiniteFloat(click.FloatRange):
    """A float option that refuses inf and nan, which click's FloatRange lets through."""

    name = "finite float"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number
