"""``decisions.jsonl``: one JSON object per decision, flushed per line, rotated by size, appended on restart."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from ard_edge._io import BYTES_PER_MB
from ard_edge.runtime.sinks.base import Sink

log = logging.getLogger(__name__)

DECISIONS_NAME = "decisions.jsonl"


class DecisionLog(Sink):
    """Append decisions to ``out_dir/decisions.jsonl``.

    Past ``rotate_mb`` the file becomes ``decisions.1.jsonl`` (older ones shift to ``.2``, ``.3``
    ...) and a new one starts; nothing is ever truncated or deleted: these are quality records.
    Each line is flushed as it is written, so a crash loses at most the line being written.
    """

    def __init__(self, out_dir: str | Path, rotate_mb: float = 64.0, name: str = DECISIONS_NAME):
        self.path = Path(out_dir) / name
        self.rotate_bytes = max(1, int(rotate_mb * BYTES_PER_MB))
        self.lines_written = 0
        self.rotations = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "ab")  # binary: sizes are counted in bytes
        self._size = self._handle.tell()

    def on_decision(self, decision, frame, result) -> None:
        line = (json.dumps(decision.to_dict(), separators=(",", ":")) + "\n").encode()
        if self._size > 0 and self._size + len(line) > self.rotate_bytes:
            self._rotate()
        self._handle.write(line)
        self._handle.flush()
        self._size += len(line)
        self.lines_written += 1

    def rotated_paths(self) -> list[Path]:
        """Existing rolled-over files, newest (``.1``) first."""
        return [self._numbered(n) for n in sorted(self._numbers())]

    def stats(self) -> dict[str, int]:
        return {"decision_lines": self.lines_written, "decision_log_rotations": self.rotations}

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def _rotate(self) -> None:
        self._handle.close()
        for number in sorted(self._numbers(), reverse=True):  # shift from the oldest so none is overwritten
            self._numbered(number).rename(self._numbered(number + 1))
        self.path.rename(self._numbered(1))
        self._handle = open(self.path, "ab")
        self._size = 0
        self.rotations += 1
        log.info("%s reached %d bytes: rolled over to %s", self.path, self.rotate_bytes, self._numbered(1).name)

    def _numbered(self, number: int) -> Path:
        return self.path.with_name(f"{self.path.stem}.{number}{self.path.suffix}")

    def _numbers(self) -> list[int]:
        pattern = re.compile(rf"{re.escape(self.path.stem)}\.(\d+){re.escape(self.path.suffix)}")
        found = (pattern.fullmatch(p.name) for p in self.path.parent.iterdir())
        return [int(m.group(1)) for m in found if m]
