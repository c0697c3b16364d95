#!/usr/bin/env python3
"""Streaming through NVIDIA Triton Inference Server against the same model run locally.

Server and clients share this machine: the tritonserver binary of the nvidia-pytriton wheel, the
model served by the Python backend running ard-edge's ONNX Runtime engine (the wheel has no
onnxruntime backend), one model instance with one ONNX Runtime thread; the local engine also
gets one thread.

(a) ``run`` with viky.cti at 640x480 Mono8 paced below capacity, batch 1: frames/s and
    capture-to-decision p50/p99, local engine vs Triton, alternating in rounds (the machine is
    shared); the per-frame overhead is the difference of the p50s, and of the engine call.
(b) two ``ard-edge run`` processes, two viky cameras, one server: the server's batch sizes (from
    its statistics endpoint) and every frame of both runs accounted for.
(c) ``ard-edge bench --engine local.onnx --engine triton://...``, interleaved.

    flock /tmp/ard-heavy.lock .venv/bin/python benchmarks/triton_serving.py --json /tmp/triton.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pipeline_overhead import WORK_DIR, export_untrained

ROOT = Path(__file__).resolve().parents[1]
PYTHON_MODEL = ROOT / "tests" / "assets" / "triton_python_model.py"
ARD_EDGE = Path(sys.executable).parent / "ard-edge"


def serve(model: Path, repository: Path, max_wait_ms: float):
    """A started local server for ``model`` (repository rewritten each time)."""
    import shutil

    from ard_edge.deploy.build import BuildRequest
    from ard_edge.deploy.triton import TritonOptions, build_triton_repository
    from ard_edge.deploy.triton_server import LocalTritonServer, as_python_backend
    from ard_edge.engines.base import BatchRange

    shutil.rmtree(repository, ignore_errors=True)
    build_triton_repository(BuildRequest(onnx=model, out=repository, batch=BatchRange(1, 4, 8)),
                            TritonOptions(name="ard", max_wait_ms=max_wait_ms))
    as_python_backend(repository / "ard", PYTHON_MODEL)
    return LocalTritonServer(repository).start()


def viky(serial: str, frame_rate: float):
    from ard_edge.camera import CameraConfig, GenICamCamera, simulator_producer

    return GenICamCamera(CameraConfig(producer=simulator_producer(), serial=serial, pixel_format="Mono8",
                                      width=640, height=480, frame_rate=frame_rate), name=f"viky{serial}")


def call_ms(engine, calls: int = 100) -> float:
    """Median ms of one batch-1 engine call on a fixed frame."""
    spec = engine.input_spec
    frame = np.random.default_rng(0).integers(0, 256, (1, spec.height, spec.width, spec.channels), np.uint8)
    engine.warmup(5)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        engine.infer(frame)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


def part_a(engines: dict, frame_rate: float, seconds: float, rounds: int) -> dict:
    from ard_edge.runtime import RuntimeConfig, run_pipeline

    results: dict = {name: {"rounds": []} for name in engines}
    for _ in range(rounds):
        for name, engine in engines.items():
            summary = run_pipeline(viky("0", frame_rate), engine, RuntimeConfig(batch=1, max_wait_ms=0.0),
                                   duration_s=seconds).to_dict()
            results[name]["rounds"].append({
                "fps": summary["throughput_fps"], "p50_ms": summary["latency_ms"]["p50"],
                "p99_ms": summary["latency_ms"]["p99"], "engine_ms_p50": summary["engine_ms_p50"],
                "captured": summary["frames_captured"], "dropped": summary["dropped"], "lost": summary["lost"],
                "errors": summary["decisions"]["ERROR"]})
            print(f"(a) {name}: {results[name]['rounds'][-1]}", flush=True)
    for name, engine in engines.items():
        rows = results[name]["rounds"]
        results[name].update({key: float(np.median([r[key] for r in rows])) for key in
                              ("fps", "p50_ms", "p99_ms", "engine_ms_p50")})
        results[name]["call_ms_p50"] = call_ms(engine)
    local, served = results["local"], results["triton"]
    results["overhead_ms_per_frame"] = {"latency_p50": served["p50_ms"] - local["p50_ms"],
                                        "engine_call_p50": served["call_ms_p50"] - local["call_ms_p50"]}
    return results


def part_b(url: str, work_dir: Path, frame_rate: float, frames: int) -> dict:
    from ard_edge.engines import open_engine

    config = work_dir / "two-cameras.yaml"
    cameras = "".join(f"  cam{i}:\n    simulator: true\n    serial: \"{i}\"\n    pixel_format: Mono8\n"
                      f"    width: 640\n    height: 480\n    frame_rate: {frame_rate}\n" for i in (0, 1))
    config.write_text(f"cameras:\n{cameras}runtime:\n  min_free_disk_mb: 0\n")
    with open_engine(url) as engine:
        before = engine.server_batch_sizes()
    env = {k: v for k, v in os.environ.items() if k != "GENICAM_GENTL64_PATH"}
    runs = [subprocess.Popen([str(ARD_EDGE), "run", "--camera", f"cam{i}", "--engine", url, "--config", str(config),
                              "--max-frames", str(frames), "--batch", "1", "--out", str(work_dir / f"run{i}")],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    with open_engine(url) as engine:
        after = engine.server_batch_sizes()
    summaries = [json.loads((work_dir / f"run{i}" / "summary.json").read_text()) for i in (0, 1)]
    result = {"executions_per_batch_size": {size: after[size] - before.get(size, 0) for size in after
                                            if after[size] - before.get(size, 0)},
              "runs": [{key: s[key] for key in ("frames_captured", "decisions", "dropped", "lost", "throughput_fps",
                                                "latency_ms", "engine_stats")} for s in summaries],
              "exit_codes": [run.returncode for run in runs], "stdout_tail": [o.splitlines()[-6:] for o in outputs]}
    print(f"(b) {json.dumps(result, indent=1)}", flush=True)
    return result


def part_c(model: Path, url: str, work_dir: Path, iterations: int) -> dict:
    report = work_dir / "bench.json"
    command = [str(ARD_EDGE), "bench", "--engine", str(model), "--engine", url, "--threads", "1",
               "--batch", "1,4", "--iterations", str(iterations), "--repeat", "3", "--json", str(report)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    print(done.stdout, done.stderr[-2000:], flush=True)
    return {"command": " ".join(command[1:]), "table": done.stdout, "returncode": done.returncode}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR / "triton")
    parser.add_argument("--json", type=Path, help="also write the results here")
    for flag, kind, default, meaning in (
        ("--image-size", int, 128, "the untrained mono model's input size"),
        ("--fps", float, 10.0, "(a): camera frame rate, below the engine's capacity"),
        ("--seconds", float, 15.0, "(a): seconds per run"),
        ("--rounds", int, 3, "(a): alternating local/Triton rounds"),
        ("--two-camera-fps", float, 30.0, "(b): each camera's frame rate"),
        ("--two-camera-frames", int, 300, "(b): frames per run"),
        ("--max-wait-ms", float, 5.0, "the server's dynamic batching queue delay"),
        ("--bench-iterations", int, 50, "(c): timed calls per engine, batch and repeat"),
    ):
        parser.add_argument(flag, type=kind, default=default, help=f"{meaning} [{default}]")
    args = parser.parse_args()

    from ard_edge.engines import open_engine

    args.work_dir.mkdir(parents=True, exist_ok=True)
    model = export_untrained(args.work_dir.parent, args.image_size)
    server = serve(model, args.work_dir / "repository", args.max_wait_ms)
    url = f"triton://{server.grpc_url}/ard"
    results: dict = {"model": str(model), "cpu_count": os.cpu_count(), "loadavg_before": os.getloadavg(),
                     "max_wait_ms": args.max_wait_ms}
    try:
        with open_engine(model, threads=1) as local, open_engine(url) as served:
            results["a"] = part_a({"local": local, "triton": served}, args.fps, args.seconds, args.rounds)
        results["b"] = part_b(url, args.work_dir, args.two_camera_fps, args.two_camera_frames)
        results["c"] = part_c(model, url, args.work_dir, args.bench_iterations)
    finally:
        server.close()
    results["loadavg_after"] = os.getloadavg()
    print(json.dumps({k: v for k, v in results.items() if k != "c"}, indent=1, default=str))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
