"""Model swap without stopping: watch an engine file, open and warm its new version, hand it over.

``build-engine`` replaces an engine by atomic renames (the engine, then its sidecar), so a new
version shows as a new inode, size or mtime of either file. The watcher waits until both have
been still for ``settle_s``, then opens the new engine *beside* the running one, warms it, and
offers it to the :class:`~ard_edge.runtime.inference.InferenceStage`, which switches between
two batches. An engine that fails to open, or does not take the cameras' frames, is refused
with one log line and the old one keeps running. :meth:`EngineWatcher.request` (SIGHUP in
``ard-edge run``) reloads without waiting for a change.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ard_edge.engines.base import Engine
from ard_edge.errors import ArdEdgeError
from ard_edge.runtime.inference import InferenceStage, model_id_of

log = logging.getLogger(__name__)

Signature = tuple[tuple[int, int, int] | None, ...]


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # between two renames, or not there (yet)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class EngineWatcher:
    """A thread that swaps ``stage``'s engine for the new version of ``path`` whenever it changes.

    Args:
        path: the engine file the stage runs.
        stage: whose engine to replace.
        open_engine: opens a path as an engine (e.g. ``functools.partial(open_engine, threads=2)``).
        poll_s: how often the files are looked at.
        settle_s: how long both files must be unchanged before the new version is opened.
    """

    def __init__(self, path: str | Path, stage: InferenceStage, open_engine: Callable[[Path], Engine],
                 poll_s: float = 0.5, settle_s: float = 0.5):
        self.path = Path(path)
        self.stage = stage
        self.open_engine = open_engine
        self.poll_s = poll_s
        self.settle_s = settle_s
        self.refused = 0  # new versions that failed to open or did not fit
        self.last_refusal: str | None = None
        self._requested = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen = self._signature()

    def start(self) -> EngineWatcher:
        self._thread = threading.Thread(target=self._loop, name="ard-engine-watch", daemon=True)
        self._thread.start()
        return self

    def request(self) -> None:
        """Reload now (safe from a signal handler): the file need not have changed."""
        self._requested.set()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> EngineWatcher:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _signature(self) -> Signature:
        return (_stat(self.path), _stat(self.path.with_name(self.path.name + ".json")))

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            requested = self._requested.is_set()
            current = self._signature()
            if current == self._seen and not requested:
                continue
            if not requested and not self._settled(current):
                continue  # still being written: look again next poll
            self._requested.clear()
            self._seen = self._signature()
            if self._seen[0] is not None:
                self._load(forced=requested)

    def _settled(self, current: Signature) -> bool:
        time.sleep(self.settle_s)
        return self._signature() == current

    def _load(self, forced: bool) -> None:
        engine = None
        try:
            model_id = model_id_of(self.path)
            if model_id == self.stage.model_id:
                log.info("%s: unchanged (%s): nothing to swap", self.path, model_id)
                return
            engine = self.open_engine(self.path)
            engine.warmup(2, batch=self.stage.batch_size)
            self.stage.offer(engine, model_id)
        except (ArdEdgeError, OSError) as exc:
            if engine is not None:
                engine.close()
            self.refused += 1
            self.last_refusal = f"new engine {self.path} refused, {self.stage.model_id} keeps running: {exc}"
            log.error("%s", self.last_refusal)
            return
        log.info("%s: opened and warmed %s%s", self.path, model_id, " (reload asked)" if forced else "")
