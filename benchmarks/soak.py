#!/usr/bin/env python3
"""Soak: 10,000 frames from the viky.cti simulator through a small engine, every sink on.

Passes when no decision is lost (decisions + drops == frames captured, and the decision log
holds every decision, each line strict JSON with this run's id) and resident memory grows by
less than 50 MB after warm-up. The run holds the ``--out`` lock as ``ard-edge run`` does, and
the fail-safe checks' own costs are timed apart (``check_costs``): the per-batch finite check,
the lock, and the sha256 a built engine's sidecar is checked with at open.

    .venv/bin/python benchmarks/soak.py --json /tmp/soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

WORK_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "ard-edge-bench"
MB = 1024 * 1024
WARMUP_FRAMES = 1000  # RSS growth is measured from here: allocator pools and ORT arenas settle first


def export_small_model(work_dir: Path, fail_fraction: float) -> Path:
    """An untrained 64 px mono model whose threshold fails about ``fail_fraction`` of viky frames."""
    onnx_path = work_dir / f"soak_64px_fail{fail_fraction:g}.onnx"
    if onnx_path.is_file():
        return onnx_path
    from ard_edge import open_engine
    from ard_edge.export import export_onnx
    from ard_edge.model import ARDModel, ModelConfig, build_teacher, save_checkpoint
    from ard_edge.runtime import prepare_frame

    work_dir.mkdir(parents=True, exist_ok=True)
    # The small distillation-only engine the recorded numbers were measured with.
    model = ARDModel(ModelConfig(backbone="efficientnet_lite0", image_size=64, distillation=True, bank_size=0, gaussian=False), build_teacher("efficientnet_lite0")).eval()
    checkpoint, probe = work_dir / "soak_64px.ckpt", work_dir / "soak_probe.onnx"
    save_checkpoint(checkpoint, model, {"threshold": 1e9, "score_stats": {"min": 0.0}, "normalization": {}})
    export_onnx(checkpoint, probe, channels=1, batch=None)
    with open_engine(probe) as engine, camera(200.0) as source:
        frames = np.stack([prepare_frame(source.fetch(timeout_s=2.0), engine.input_spec) for _ in range(64)])
        scores = engine.infer(frames).score
    threshold = float(np.quantile(scores, 1.0 - fail_fraction))
    save_checkpoint(checkpoint, model, {"threshold": threshold, "score_stats": {"min": 0.0}, "normalization": {}})
    export_onnx(checkpoint, onnx_path, channels=1, batch=None)
    return onnx_path


def camera(frame_rate: float):
    from ard_edge.camera import CameraConfig, GenICamCamera, simulator_producer

    config = CameraConfig(producer=simulator_producer(), serial="0", pixel_format="Mono8", width=128, height=100,
                          frame_rate=frame_rate)
    return GenICamCamera(config, name="viky")


class RssSampler:
    """Resident set size of this process every ``period_s``, tagged with frames captured so far."""

    def __init__(self, pipeline, period_s: float = 0.5):
        import psutil

        self._process = psutil.Process()
        self._pipeline = pipeline
        self._period_s = period_s
        self.samples: list[tuple[int, int]] = []  # (frames_captured, rss bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((self._pipeline.status().frames_captured, self._process.memory_info().rss))

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            self.samples.append((self._pipeline.status().frames_captured, self._process.memory_info().rss))


def count_logged(out_dir: Path, run_id: str) -> int:
    """Lines of this run in the decision files; each must be strict JSON (no NaN/Infinity tokens)."""

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token} in the decision log")

    lines = [json.loads(line, parse_constant=refuse) for p in out_dir.glob("decisions*.jsonl")
             for line in p.read_text().splitlines()]
    return sum(line["run_id"] == run_id for line in lines)


def _time_us(call, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - start) / repeat * 1e6


def check_costs(engine, batch: int, out_dir: Path, model: Path) -> dict:
    """Microseconds per call of what the fail-safe checks add: per batch, per run, per engine open."""
    from ard_edge._io import folder_lock, sha256_file
    from ard_edge.runtime.decision import non_finite

    spec = engine.input_spec
    result = engine.infer(np.zeros((batch, spec.height, spec.width, spec.channels), np.uint8))
    big = out_dir.parent / "sha256_probe.bin"
    big.write_bytes(os.urandom(9_000_000))  # the size of the demo's INT8 engine
    costs = {
        "finite_check_us_per_batch": _time_us(lambda: non_finite(result), 2000),
        "folder_lock_us_per_run": _time_us(lambda: _lock_once(folder_lock, out_dir), 200),
        "sha256_ms_at_open_model": _time_us(lambda: sha256_file(model), 5) / 1000,
        "model_bytes": model.stat().st_size,
        "sha256_ms_at_open_9mb": _time_us(lambda: sha256_file(big), 5) / 1000,
    }
    big.unlink()
    costs["finite_check_us_per_frame"] = costs["finite_check_us_per_batch"] / batch
    return costs


def _lock_once(folder_lock, out_dir: Path) -> None:
    with folder_lock(out_dir):
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--frame-rate", type=float, default=200.0, help="viky AcquisitionFrameRate (max 200)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--fail-fraction", type=float, default=0.05, help="share of frames the threshold fails")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import psutil

    from ard_edge import open_engine
    from ard_edge._io import folder_lock
    from ard_edge.runtime import DecisionLog, EvidenceSaver, Pipeline, RuntimeConfig

    model = export_small_model(args.work_dir, args.fail_fraction)
    out_dir = args.work_dir / "soak_out"
    shutil.rmtree(out_dir, ignore_errors=True)
    settings = RuntimeConfig(batch=args.batch, rotate_mb=1.0, min_free_disk_mb=100.0)
    rss_before = psutil.Process().memory_info().rss
    start = time.monotonic()
    with open_engine(model) as engine:
        with folder_lock(out_dir):
            sinks = [DecisionLog(out_dir, settings.rotate_mb), EvidenceSaver.from_settings(out_dir, settings)]
            pipeline = Pipeline(camera(args.frame_rate), engine, settings, sinks, max_frames=args.frames)
            with RssSampler(pipeline) as rss:
                pipeline.start()
                summary = pipeline.join()
        wall_s = time.monotonic() - start
        costs = check_costs(engine, args.batch, out_dir, model)

    baseline = next((r for n, r in rss.samples if n >= WARMUP_FRAMES), rss.samples[0][1])
    end = rss.samples[-1][1]
    peak = max(r for _, r in rss.samples)
    logged = count_logged(out_dir, summary.run_id)
    decided = sum(summary.decisions.values())
    result = {
        "summary": summary.to_dict(),
        "decisions_logged": logged,
        "log_files": len(list(out_dir.glob("decisions*.jsonl"))),
        "rss_mb": {"before": rss_before / MB, "after_warmup": baseline / MB, "end": end / MB, "peak": peak / MB},
        "rss_growth_mb": (end - baseline) / MB,
        "rss_samples": len(rss.samples),
        "wall_s": wall_s,
        "loadavg_after": os.getloadavg(),
        "check_costs": costs,
    }
    ok = summary.lost == 0 and logged == decided and result["rss_growth_mb"] < 50
    result["pass"] = ok
    print(f"frames captured {summary.frames_captured}: decisions {summary.decisions}, dropped {summary.dropped},"
          f" lost {summary.lost}; log lines {logged} in {result['log_files']} files;"
          f" evidence saved {summary.sink_stats['evidence_saved']}, skipped {summary.sink_stats['evidence_skipped']}")
    print(f"throughput {summary.throughput_fps:.1f} fps; latency p50 {summary.latency_ms['p50']:.1f}"
          f" p99 {summary.latency_ms['p99']:.1f} ms; engine p50 {summary.engine_ms_p50:.1f} ms/batch"
          f" (mean batch {summary.mean_batch:.2f})")
    rss_mb = result["rss_mb"]
    print(f"RSS MB: before {rss_mb['before']:.0f}, after {WARMUP_FRAMES} frames {rss_mb['after_warmup']:.0f},"
          f" end {rss_mb['end']:.0f}, peak {rss_mb['peak']:.0f}; growth {result['rss_growth_mb']:+.1f} MB;"
          f" wall {wall_s:.0f} s -> {'PASS' if ok else 'FAIL'}")
    print(f"added checks: finite check {costs['finite_check_us_per_frame']:.2f} us/frame"
          f" ({costs['finite_check_us_per_batch']:.2f} us per batch of {args.batch}); --out lock"
          f" {costs['folder_lock_us_per_run']:.0f} us per run; sha256 at open {costs['sha256_ms_at_open_model']:.1f} ms"
          f" for this {costs['model_bytes'] / 1e6:.1f} MB model, {costs['sha256_ms_at_open_9mb']:.1f} ms for 9 MB")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
