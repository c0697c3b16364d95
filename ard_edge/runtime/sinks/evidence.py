"""Evidence images: each FAIL frame (and optionally every Nth PASS) as PNG plus its heatmap overlay.

PNG encoding takes milliseconds per frame, so it runs on this sink's own thread behind a
bounded queue: when the queue is full the image is skipped and counted, and the decision,
which the pipeline has already published, is never held up.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ard_edge._io import BYTES_PER_MB, ensure_folder, remove_stale_temps
from ard_edge.runtime.decision import FAIL, PASS
from ard_edge.runtime.heatmap import render_overlay
from ard_edge.runtime.preprocess import crop_roi
from ard_edge.runtime.sinks.base import RunInfo, Sink

log = logging.getLogger(__name__)

_STOP = object()


class EvidenceSaver(Sink):
    """Write ``out_dir/fail/<when>_<camera>_<frame>.png`` and ``..._heatmap.png`` (``pass/`` likewise).

    Args:
        out_dir: run output folder.
        save_pass_every: keep every Nth PASS frame too; 0 keeps none.
        min_free_disk_mb: below this free space on ``out_dir``'s disk, skip images (one warning).
        queue_size: images waiting to be written before new ones are skipped.
    """

    def __init__(self, out_dir: str | Path, save_pass_every: int = 0, min_free_disk_mb: float = 500.0,
                 queue_size: int = 16):
        self.out_dir = Path(out_dir)
        self.save_pass_every = save_pass_every
        self.min_free_bytes = int(min_free_disk_mb * BYTES_PER_MB)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._threshold = 0.0
        self._roi: tuple[int, int, int, int] | None = None
        self._passes_seen = 0
        self._counts = {"evidence_saved": 0, "evidence_skipped_queue_full": 0,
                        "evidence_skipped_disk_floor": 0, "evidence_skipped_write_error": 0}
        self._disk_low = False
        self._thread: threading.Thread | None = None
        self._annotated = None  # the frame annotate() last queued, so on_decision does not queue it twice
        ensure_folder(self.out_dir)
        for kind in ("fail", "pass"):  # image names never repeat, so no later write would clean these up
            if removed := remove_stale_temps(self.out_dir / kind):
                log.info("removed %d temporary image file(s) left under %s by a killed run", removed, self.out_dir / kind)

    @classmethod
    def from_settings(cls, out_dir: str | Path, settings) -> EvidenceSaver:
        """Build from a :class:`~ard_edge.runtime.config.RuntimeConfig`."""
        return cls(out_dir, settings.save_pass_every, settings.min_free_disk_mb, settings.evidence_queue_size)

    def on_start(self, run: RunInfo) -> None:
        self._threshold = run.threshold
        self._roi = run.roi
        self._thread = threading.Thread(target=self._worker, name="ard-evidence", daemon=True)
        self._thread.start()

    def annotate(self, decision, frame, result) -> dict[str, Any]:
        """Queue the images before the decision is written, so its ``evidence`` names them."""
        self._annotated = frame
        relative = self._enqueue(decision, frame, result)
        return {"evidence": relative} if relative else {}

    def on_decision(self, decision, frame, result) -> None:
        if frame is not None and frame is self._annotated:
            return  # queued by annotate()
        self._enqueue(decision, frame, result)

    def _enqueue(self, decision, frame, result) -> str | None:
        """Queue the images of this decision; return their path relative to ``out_dir``, None when not queued."""
        kind = self._kind(decision.verdict)
        if kind is None or result is None:
            return None
        try:
            self._queue.put_nowait((kind, decision, frame, result.anomaly_map))
        except queue.Full:
            self._counts["evidence_skipped_queue_full"] += 1
            self.warn_once("full", "evidence queue full: skipping images (decisions are unaffected); "
                            "the disk is slower than the FAIL rate")
            return None
        return f"{kind}/{evidence_stem(decision)}.png"

    def stats(self) -> dict[str, int]:
        skipped = sum(v for k, v in self._counts.items() if k.startswith("evidence_skipped"))
        return {**self._counts, "evidence_skipped": skipped}

    def summary_note(self) -> str:
        stats = self.stats()
        return f"evidence saved {stats['evidence_saved']}, skipped {stats['evidence_skipped']}"

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)  # after every queued image: close waits for them to be written
            thread.join()

    # -- worker thread

    def _kind(self, verdict: str) -> str | None:
        if verdict == FAIL:
            return "fail"
        if verdict == PASS and self.save_pass_every:
            self._passes_seen += 1
            if self._passes_seen % self.save_pass_every == 0:
                return "pass"
        return None

    def _worker(self) -> None:
        while (job := self._queue.get()) is not _STOP:
            kind, decision, frame, anomaly_map = job
            if not self._disk_has_room():
                self._counts["evidence_skipped_disk_floor"] += 1
                continue
            try:
                self._save(kind, decision, frame, anomaly_map)
            except Exception as exc:  # noqa: BLE001 - a failed image must not stop the others or the run
                self._counts["evidence_skipped_write_error"] += 1
                self.warn_once("write", f"cannot write evidence image under {self.out_dir}: {exc}")
            else:
                self._counts["evidence_saved"] += 1

    def _save(self, kind: str, decision, frame, anomaly_map: np.ndarray) -> None:
        import cv2

        from ard_edge.data import write_png  # loads cv2, like this method: only once images are saved

        stem = self.out_dir / kind / evidence_stem(decision)
        image = frame.image
        bgr = image if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        write_png(stem.with_name(stem.name + ".png"), bgr)
        overlay = render_overlay(crop_roi(image, self._roi), anomaly_map[0, 0], self._threshold)
        write_png(stem.with_name(stem.name + "_heatmap.png"), overlay)

    def _disk_has_room(self) -> bool:
        import psutil

        free = psutil.disk_usage(str(self.out_dir)).free
        if free < self.min_free_bytes:
            if not self._disk_low:
                self._disk_low = True
                log.warning("only %.0f MB free under %s (floor %.0f MB): evidence images stop until space"
                            " returns; decisions continue", free / BYTES_PER_MB, self.out_dir,
                            self.min_free_bytes / BYTES_PER_MB)
            return False
        if self._disk_low:
            self._disk_low = False
            log.info("free space under %s is back above the floor: saving evidence again", self.out_dir)
        return True


def evidence_stem(decision) -> str:
    """The file name of a decision's evidence, without ``.png``: ``20261128T153006.123Z_cam0_00000042``
    (sorts by time, unique across restarts; the live page links to it)."""
    when = decision.received.replace("-", "").replace(":", "")
    camera = re.sub(r"[^A-Za-z0-9_.-]+", "_", decision.camera).strip("_")[-40:] or "camera"
    return f"{when}_{camera}_{decision.frame_id:08d}"
