"""``BenchSettings``: what one ``ard-edge bench`` call measures and for how long."""

from __future__ import annotations

import dataclasses

from ard_edge.errors import ConfigError

DEFAULT_ITERATIONS = 50


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    """How to measure; validated by :meth:`validate` (errors name the command-line option)."""

    # What to run.
    batches: tuple[int, ...] = (1,)  # batch sizes, measured in this order
    seed: int = 0  # seeds the random uint8 frames (one tensor per batch size and input shape)

    # How long. Exactly one of iterations / duration_s bounds each batch block of each run.
    iterations: int | None = DEFAULT_ITERATIONS  # timed calls per engine per batch (raw) or frames (pipeline)
    duration_s: float | None = None  # seconds per batch block (raw) or per pipeline run
    warmup: int = 5  # untimed calls per engine before every batch block, discarded
    repeat: int = 1  # run the whole interleaved measurement this many times

    # Backend options.
    cuda_graph: bool = False  # capture CUDA graphs (engines that offer enable_cuda_graph())

    def validate(self) -> None:
        if not self.batches:
            raise ConfigError("--batch: give at least one batch size")
        bad = [b for b in self.batches if b < 1]
        if bad:
            raise ConfigError(f"--batch: batch sizes must be >= 1, got {bad}")
        if len(set(self.batches)) != len(self.batches):
            raise ConfigError(f"--batch: batch sizes repeat: {list(self.batches)}")
        if (self.iterations is None) == (self.duration_s is None):
            raise ConfigError("give either --iterations or --duration, not both")
        if self.iterations is not None and self.iterations < 1:
            raise ConfigError(f"--iterations must be >= 1, got {self.iterations}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ConfigError(f"--duration must be positive seconds, got {self.duration_s}")
        if self.warmup < 0:
            raise ConfigError(f"--warmup must be >= 0, got {self.warmup}")
        if self.repeat < 1:
            raise ConfigError(f"--repeat must be >= 1, got {self.repeat}")


def parse_batches(text: str) -> tuple[int, ...]:
    """``"1,4,8"`` -> ``(1, 4, 8)``; raises ConfigError naming the bad item."""
    batches = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            batches.append(int(item))
        except ValueError:
            raise ConfigError(f"--batch: expected comma-separated integers like 1,4,8, got {item!r}") from None
    return tuple(batches)
