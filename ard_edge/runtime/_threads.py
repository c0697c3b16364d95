"""Thread helpers of the pipeline: a throttled warning and the process-wide GIL switch interval."""

from __future__ import annotations

import logging
import sys
import threading
import time

log = logging.getLogger(__name__)

WARN_EVERY_S = 10.0  # repeat drop/backpressure warnings at most this often


class Throttled:
    """A warning that repeats at most every ``WARN_EVERY_S``, with the count since it last spoke."""

    def __init__(self, message: str):
        self.message = message
        self._pending = 0
        self._last_s = -float("inf")

    def hit(self, detail: str = "") -> None:
        self._pending += 1
        now = time.monotonic()
        if now - self._last_s >= WARN_EVERY_S:
            log.warning("%s (%d since last report%s)", self.message, self._pending, detail)
            self._pending = 0
            self._last_s = now


class SwitchInterval:
    """Shorten ``sys.setswitchinterval`` while at least one pipeline runs; restore it after the last.

    Process-wide state, so it is reference-counted: two pipelines (two cameras) in one process
    do not undo each other.
    """

    _lock = threading.Lock()
    _users = 0
    _saved_s = 0.0

    @classmethod
    def acquire(cls, interval_ms: float) -> bool:
        if interval_ms <= 0:
            return False
        with cls._lock:
            if cls._users == 0:
                cls._saved_s = sys.getswitchinterval()
            cls._users += 1
            sys.setswitchinterval(min(sys.getswitchinterval(), interval_ms / 1000.0))
        return True

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            cls._users -= 1
            if cls._users == 0:
                sys.setswitchinterval(cls._saved_s)
