"""Terminal helpers shared by the commands: progress bars live here, never in library code."""

from __future__ import annotations

import sys


def progress_bar(total: int | None, desc: str, unit: str = "it", **kwargs):
    """A tqdm bar on stderr; quiet (no redraws) when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
        **kwargs,
    )
