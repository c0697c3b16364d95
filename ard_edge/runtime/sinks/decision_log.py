"""``decisions.jsonl``: one JSON object per decision, written per line, rotated by size, appended on restart.

The decision log is the line's record, so it is the one *critical* sink: when a line cannot be
written (a full disk, a removed mount) it raises :class:`~ard_edge.errors.OutputError`, the pipeline stops
acquiring, and the decisions that follow are counted as unwritten instead of being tried
again: the file then ends with the last whole line written, with no holes and no partial line.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from ard_edge._io import BYTES_PER_MB, ensure_folder
from ard_edge.errors import OutputError
from ard_edge.runtime.sinks.base import Sink

log = logging.getLogger(__name__)

DECISIONS_NAME = "decisions.jsonl"
PARTIAL_SUFFIX = ".partial"  # a truncated last line found on open is moved to <name>.<n>.partial


class DecisionLog(Sink):
    """Append decisions to ``out_dir/decisions.jsonl``.

    Past ``rotate_mb`` the file becomes ``decisions.1.jsonl`` (older ones shift to ``.2``, ``.3``
    ...) and a new one starts; nothing is ever truncated or deleted: these are quality records.
    Each line goes to the kernel in one ``write`` as it is decided, so a crash loses at most the
    line being written; the next run moves such a partial last line aside before appending.
    """

    critical = True

    def __init__(self, out_dir: str | Path, rotate_mb: float = 64.0, name: str = DECISIONS_NAME):
        self.path = ensure_folder(out_dir) / name
        self.rotate_bytes = max(1, int(rotate_mb * BYTES_PER_MB))
        self.lines_written = 0
        self.lines_unwritten = 0
        self.rotations = 0
        self.failure: str | None = None  # why writing stopped, once it has
        self.repaired: Path | None = None  # where a partial last line found on open was moved
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def on_decision(self, decision, frame, result) -> None:
        if self.failure is not None:
            self.lines_unwritten += 1
            return
        line = (json.dumps(decision.to_dict(), separators=(",", ":"), allow_nan=False) + "\n").encode()
        try:
            if self._size > 0 and self._size + len(line) > self.rotate_bytes:
                self._rotate()
            self._write(line)
        except OSError as exc:
            self._fail(exc)
        self._size += len(line)
        self.lines_written += 1

    def rotated_paths(self) -> list[Path]:
        """Existing rolled-over files, newest (``.1``) first."""
        return [self._numbered(n) for n in sorted(self._numbers())]

    def stats(self) -> dict[str, int]:
        return {"decision_lines": self.lines_written, "decision_lines_unwritten": self.lines_unwritten,
                "decision_log_rotations": self.rotations}

    def summary_note(self) -> str:
        note = f"decision log: {self.lines_written} lines written, {self.lines_unwritten} not written"
        if self.failure:
            note += f" ({self.failure})"
        if self.repaired:
            note += f"; a truncated last line from an earlier run was moved to {self.repaired.name}"
        return note

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    # -- file handling

    def _open(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        try:
            self._repair_tail(fd)
        except OSError as exc:
            os.close(fd)
            raise OutputError(f"cannot repair the end of {self.path}: {exc.strerror or exc}") from exc
        return fd

    def _repair_tail(self, fd: int) -> None:
        """Move a last line without its newline (a crash or a full disk mid-write) to a side file."""
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        start = size
        while start > 0:  # back to the previous newline, a block at a time
            block = os.pread(fd, min(start, 1 << 16), max(0, start - (1 << 16)))
            cut = block.rfind(b"\n")
            if cut >= 0:
                start = start - len(block) + cut + 1
                break
            start -= len(block)
        self.repaired = self._free_partial_name()
        with open(self.repaired, "xb") as side:
            side.write(os.pread(fd, size - start, start))
        os.ftruncate(fd, start)
        log.warning("%s ended in a truncated line (%d bytes, from a crash or a full disk): moved it to %s",
                    self.path, size - start, self.repaired)

    def _free_partial_name(self) -> Path:
        number = 1
        while (candidate := self.path.with_name(f"{self.path.name}.{number}{PARTIAL_SUFFIX}")).exists():
            number += 1
        return candidate

    def _write(self, line: bytes) -> None:
        written = 0
        try:
            while written < len(line):
                written += os.write(self._fd, line[written:])
        except OSError:
            if written:  # take back the part of the line that made it, so the file ends on a whole line
                os.ftruncate(self._fd, self._size)
            raise

    def _fail(self, exc: OSError) -> None:
        self.failure = f"{self.path}: {exc.strerror or exc}"  # the pipeline hands this decision back, as an ERROR
        log.error("cannot write the decision log %s: %s; no further decision is written", self.path,
                  exc.strerror or exc)
        raise OutputError(self.failure) from exc

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = None
        for number in sorted(self._numbers(), reverse=True):  # shift from the oldest so none is overwritten
            self._numbered(number).rename(self._numbered(number + 1))
        self.path.rename(self._numbered(1))
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        self._size = 0
        self.rotations += 1
        log.info("%s reached %d bytes: rolled over to %s", self.path, self.rotate_bytes, self._numbered(1).name)

    def _numbered(self, number: int) -> Path:
        return self.path.with_name(f"{self.path.stem}.{number}{self.path.suffix}")

    def _numbers(self) -> list[int]:
        pattern = re.compile(rf"{re.escape(self.path.stem)}\.(\d+){re.escape(self.path.suffix)}")
        found = (pattern.fullmatch(p.name) for p in self.path.parent.iterdir())
        return [int(m.group(1)) for m in found if m]
