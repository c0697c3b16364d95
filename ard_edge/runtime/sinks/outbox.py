"""Store and forward: each network sink's bounded on-disk queue and the thread that drains it.

sqlite3 (stdlib) holds the queue: one file per sink, transactional, so a kill mid-write loses at
most the row being added and never corrupts the rest, and undelivered decisions from one run
are delivered by the next. WAL with ``synchronous=NORMAL`` makes an insert a page write without
an fsync (tens of microseconds), cheap enough for the pipeline's output thread; the delivery
thread does all the network I/O, so a slow or dead endpoint only makes its own queue grow.
"""

from __future__ import annotations

import abc
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

from ard_edge._io import ensure_folder
from ard_edge.errors import OutputError
from ard_edge.runtime.sinks.base import Sink

log = logging.getLogger(__name__)

OUTBOX_DIR = "outbox"  # under the run folder: <out>/outbox/<sink>.sqlite


class DiskQueue:
    """A FIFO of JSON texts in one sqlite file, bounded to ``max_items``: past it the oldest go (counted).

    Thread-safe: the output thread puts, the sink's delivery thread peeks and removes.
    """

    def __init__(self, path: str | Path, max_items: int):
        self.path = Path(path)
        self.max_items = max_items
        self.dropped = 0
        self._lock = threading.Lock()
        ensure_folder(self.path.parent)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT)")
            self._count = self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
        except sqlite3.Error as exc:
            raise OutputError(f"cannot open the store-and-forward queue {self.path}: {exc}") from exc

    def __len__(self) -> int:
        return self._count

    def put(self, body: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO queue (body) VALUES (?)", (body,))
            self._count += 1
            if self._count > self.max_items:
                excess = self._count - self.max_items
                self._db.execute("DELETE FROM queue WHERE id IN (SELECT id FROM queue ORDER BY id LIMIT ?)", (excess,))
                self._count -= excess
                self.dropped += excess

    def peek(self, limit: int, after_id: int = 0) -> list[tuple[int, str]]:
        """Up to ``limit`` oldest (id, body) with id > ``after_id``, without removing them."""
        with self._lock:
            return self._db.execute("SELECT id, body FROM queue WHERE id > ? ORDER BY id LIMIT ?",
                                    (after_id, limit)).fetchall()

    def remove(self, ids: list[int]) -> None:
        """Remove delivered rows; ids already dropped as oldest are ignored."""
        if not ids:
            return
        with self._lock:
            removed = self._db.executemany("DELETE FROM queue WHERE id = ?", [(i,) for i in ids]).rowcount
            self._count -= max(0, removed)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class ForwardingSink(Sink):
    """A sink that stores each decision on disk at once and delivers it from its own thread.

    Subclasses implement :meth:`deliver_loop`, the delivery thread's body: take rows with
    ``self.queue.peek``, deliver them, ``self.queue.remove`` them, wait on ``self.wake`` (set by
    every new decision and by whatever the subclass hooks to it), and return once
    :meth:`should_stop` says so.

    Args:
        name: the sink's name in logs and counters (``mqtt``, ``webhook``).
        out_dir: the run folder; the queue is ``<out_dir>/outbox/<name>.sqlite``.
        max_queued: the queue's bound.
        drain_s: on close, how long the thread may keep delivering what is queued; the rest stays
            on disk for the next run.
    """

    def __init__(self, name: str, out_dir: str | Path, max_queued: int, drain_s: float = 5.0):
        self.name = name
        self.queue = DiskQueue(Path(out_dir) / OUTBOX_DIR / f"{name}.sqlite", max_queued)
        self.drain_s = drain_s
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self._stop_by_s = float("inf")  # monotonic deadline for draining, set by close()
        self.counts = {"delivered": 0, "errors": 0}
        self._lock = threading.Lock()  # several cameras' pipelines start it (MultiRun's shared sinks)
        self._thread: threading.Thread | None = None
        if leftover := len(self.queue):
            log.info("%s: %d undelivered decision(s) from an earlier run are queued first", name, leftover)

    def wants(self, decision) -> bool:
        """Whether this sink sends ``decision`` at all (a webhook may send only FAILs)."""
        return True

    def start_delivery(self) -> None:
        """Start the delivery thread (once; later calls do nothing)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"ard-{self.name}", daemon=True)
                self._thread.start()

    def on_start(self, run) -> None:
        self.start_delivery()

    def on_decision(self, decision, frame, result) -> None:
        if not self.wants(decision):
            return
        try:
            self.queue.put(json.dumps(decision.to_dict(), separators=(",", ":"), allow_nan=False))
        except sqlite3.Error as exc:  # a full or failing disk: counted and said, never silent
            self.queue.dropped += 1
            self.warn_once("put", f"{self.name}: cannot queue decisions in {self.queue.path} ({exc}):"
                           " they are dropped and counted")
            return
        self.wake.set()

    def stats(self) -> dict[str, int]:
        return {f"{self.name}_{key}": value for key, value in self.snapshot().items()}

    def snapshot(self) -> dict[str, int]:
        """delivered, queued (waiting on disk), dropped (oldest, queue full), errors (failed attempts)."""
        return {"delivered": self.counts["delivered"], "queued": len(self.queue), "dropped": self.queue.dropped,
                "errors": self.counts["errors"]}

    def summary_note(self) -> str:
        s = self.snapshot()
        return f"{self.name}: delivered {s['delivered']}, queued {s['queued']}, dropped {s['dropped']}, errors {s['errors']}"

    def close(self) -> None:
        thread, self._thread = self._thread, None
        self._stop_by_s = time.monotonic() + self.drain_s
        self.stopping.set()
        self.wake.set()
        if thread is not None:
            thread.join(self.drain_s + 5.0)
        self.close_connection()
        if queued := len(self.queue):
            log.warning("%s: %d decision(s) not delivered yet stay queued in %s for the next run",
                        self.name, queued, self.queue.path)
        self.queue.close()

    def _run(self) -> None:
        try:
            self.deliver_loop()
        except Exception:  # noqa: BLE001 - decisions stay queued on disk; the run goes on
            log.exception("%s: the delivery thread failed; decisions stay queued in %s", self.name, self.queue.path)

    @abc.abstractmethod
    def deliver_loop(self) -> None:
        """The delivery thread's body (see the class docstring)."""

    def close_connection(self) -> None:
        """Release the connection after the delivery thread has ended."""

    def should_stop(self, idle: bool) -> bool:
        """After close(): stop once nothing is left (``idle``) or the drain time is up."""
        return self.stopping.is_set() and (idle or time.monotonic() >= self._stop_by_s)

    def pause(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` (backoff), less when closing; True when the drain time is up."""
        end_s = time.monotonic() + seconds
        while (left_s := min(end_s, self._stop_by_s) - time.monotonic()) > 0:
            time.sleep(min(left_s, 0.05))  # in slices: close() may move the deadline closer
        return self.should_stop(False)
