"""The bounded queue between two pipeline stages: drop the oldest item, or block the producer."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

# get() returns these instead of an item.
EMPTY = object()  # nothing arrived within the timeout
CLOSED = object()  # the producer is done and everything it put has been taken


class StageQueue:
    """A FIFO of at most ``capacity`` items with one producer-side policy.

    ``drop_oldest=True`` (free-running cameras): a put into a full queue evicts the oldest item
    and returns it, so the consumer always works on the freshest frames. ``drop_oldest=False``
    (triggered cameras): a put into a full queue waits, which holds the camera back instead of
    losing a triggered part. ``close()`` ends the stream; it never displaces an item.
    """

    def __init__(self, capacity: int, drop_oldest: bool, name: str = "queue"):
        if capacity < 1:
            raise ValueError(f"{name}: capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.drop_oldest = drop_oldest
        self.name = name
        self.blocked_s = 0.0  # total time producers waited on a full queue
        self.on_change: Callable[[], None] | None = None  # called after each put and the close: a consumer of several queues waits on it
        self._items: collections.deque[Any] = collections.deque()
        self._closed = False
        lock = threading.Lock()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)

    def __len__(self) -> int:
        with self._not_empty:
            return len(self._items)

    def full(self) -> bool:
        with self._not_empty:
            return len(self._items) >= self.capacity

    def put(self, item: Any) -> Any | None:
        """Append ``item``; return the item evicted to make room (drop mode), else None."""
        with self._not_full:
            if self._closed:
                raise RuntimeError(f"{self.name}: put after close")
            evicted = None
            if len(self._items) >= self.capacity:
                if self.drop_oldest:
                    evicted = self._items.popleft()
                else:
                    start = time.monotonic()
                    while len(self._items) >= self.capacity:
                        self._not_full.wait()
                    self.blocked_s += time.monotonic() - start
            self._items.append(item)
            self._not_empty.notify()
        if self.on_change is not None:
            self.on_change()
        return evicted

    def wait_for_room(self, timeout_s: float) -> None:
        """Wait until a put would neither evict nor block, the queue closes, or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        with self._not_full:
            while len(self._items) >= self.capacity and not self._closed:
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    return
                self._not_full.wait(remaining_s)

    def get(self, timeout_s: float | None = None) -> Any:
        """The oldest item; :data:`EMPTY` after ``timeout_s``; :data:`CLOSED` once drained after close."""
        with self._not_empty:
            if timeout_s is None:
                while not self._items and not self._closed:
                    self._not_empty.wait()
            else:
                deadline = time.monotonic() + timeout_s
                while not self._items and not self._closed:
                    remaining_s = deadline - time.monotonic()
                    if remaining_s <= 0:
                        return EMPTY
                    self._not_empty.wait(remaining_s)
            if not self._items:
                return CLOSED
            item = self._items.popleft()
            self._not_full.notify()
            return item

    def close(self) -> None:
        """No more puts; consumers drain what is left, then get :data:`CLOSED`."""
        with self._not_empty:
            self._closed = True
            self._not_empty.notify_all()
        if self.on_change is not None:
            self.on_change()
