"""Polling for a condition in tests that run real threads, brokers and servers."""

from __future__ import annotations

import time


def wait_for(condition, timeout_s: float = 20.0, fail: bool = True) -> None:
    """Poll ``condition`` until it holds; past ``timeout_s`` fail the test, or return when ``fail`` is False."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            assert not fail, "timed out waiting"
            return
        time.sleep(0.02)
