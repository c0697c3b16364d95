#!/usr/bin/env python3
"""Results to the factory: the OPC UA handshake round trip, the sinks' overhead, a soak with broker restarts.

handshake  ``ard-edge run`` on TLSimu (``trigger: software``) hosts the OPC UA server; a client in
           this process plays the PLC: write Trigger, poll ResultReady, read the result, write
           ResultAck. Round trip = Trigger written -> ResultReady seen; overhead = round trip
           minus the frame's engine time (from decisions.jsonl). Goal: overhead p50 <= 5 ms.
overhead   pipeline_overhead.py's (b_replay): a paced 640x480 replay at half the engine's
           batch-1 rate; runs with MQTT (local mosquitto) + OPC UA + webhook (a local server, every
           decision) alternate with runs with none. Goal: overhead p50 grows by <= 1 ms.
soak       soak.py's 10,000 viky frames with the log, evidence and MQTT on; mosquitto is stopped
           and restarted three times during the run. Goal: zero decisions lost in the log and
           on MQTT (unique frame ids), RSS growth < 50 MB after warm-up.

    .venv/bin/python benchmarks/outputs.py handshake --engine demo/engines/demo.engine --cycles 500
    .venv/bin/python benchmarks/outputs.py overhead --pairs 6
    .venv/bin/python benchmarks/outputs.py soak
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the same mosquitto helper the tests use

from _mosquitto import Broker, free_port  # noqa: E402
from pipeline_overhead import WORK_DIR, export_untrained, raw_engine_fps, replay_640x480  # noqa: E402

TLSIMU = Path(os.environ.get("ARD_EDGE_TLSIMU", Path.home() / ".cache/ard-edge/genicam-1.5.0/TLSimu.cti"))
ARD_EDGE = Path(sys.executable).parent / "ard-edge"


def percentiles(values) -> dict[str, float]:
    p50, p99 = np.percentile(np.asarray(values, dtype=np.float64), [50, 99])
    return {"p50": float(p50), "p99": float(p99), "max": float(np.max(values)), "n": len(values)}


# -- handshake ---------------------------------------------------------------------------------


def tlsimu_config() -> dict:
    return {"producer": str(TLSIMU), "serial": "SN_InterfaceA_0", "width": 64, "height": 48, "trigger": "software"}


def camera_trigger_to_frame_ms(cycles: int = 60) -> dict[str, float]:
    """TLSimu alone: software trigger -> frame fetched, the camera's own share of a handshake."""
    from ard_edge.camera import CameraConfig, GenICamCamera

    times = []
    with GenICamCamera(CameraConfig(**tlsimu_config()), name="line1") as camera:
        for _ in range(cycles):
            start = time.perf_counter()
            camera.trigger()
            camera.fetch(timeout_s=2.0)
            times.append((time.perf_counter() - start) * 1000.0)
    return percentiles(times[10:])


def handshake(args) -> dict:
    camera_ms = camera_trigger_to_frame_ms()
    work = args.work_dir / "handshake"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/ard-edge/"
    config = work / "ard-edge.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "cameras": {"line1": tlsimu_config()},
        "outputs": {"opcua": {"endpoint": endpoint}},
    }))
    threads = ["--engine-threads", str(args.engine_threads)] if args.engine_threads else []
    run = subprocess.Popen([str(ARD_EDGE), "run", "--camera", "line1", "--engine", str(args.engine), "--config",
                            str(config), "--out", str(work / "out"), *threads], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        trips = asyncio.run(_plc(endpoint, args.cycles))
    finally:
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=120)
    decisions = {d["frame_id"]: d for d in map(json.loads, (work / "out" / "decisions.jsonl").read_text().splitlines())}
    trips = trips[args.warmup:]
    round_ms = [t["round_trip_ms"] for t in trips]
    engine_ms = [decisions[t["frame_id"]]["engine_ms"] for t in trips]
    overhead_ms = [r - e for r, e in zip(round_ms, engine_ms)]
    # Where the overhead goes: the pipeline's own share (frame received -> decided, minus engine time);
    # the rest is OPC UA, the trigger and the camera delivering the frame.
    pipeline_ms = [decisions[t["frame_id"]]["latency_ms"] - e for t, e in zip(trips, engine_ms)]
    result = {"engine": str(args.engine), "cycles": len(trips), "round_trip_ms": percentiles(round_ms),
              "engine_ms": percentiles(engine_ms), "overhead_ms": percentiles(overhead_ms),
              "pipeline_overhead_ms": percentiles(pipeline_ms),
              "overhead_over_engine_p50_ms": float(np.median(round_ms) - np.median(engine_ms)),
              "camera_trigger_to_frame_ms": camera_ms,
              "overhead_over_engine_and_camera_p50_ms": float(np.median(round_ms) - np.median(engine_ms) - camera_ms["p50"]),
              "run_exit": run.returncode, "matched": all(decisions[t["frame_id"]]["verdict"] == t["verdict"] for t in trips)}
    r, e = result["round_trip_ms"], result["engine_ms"]
    print(f"handshake x{len(trips)}: round trip p50 {r['p50']:.2f} p99 {r['p99']:.2f} max {r['max']:.2f} ms;"
          f" engine p50 {e['p50']:.2f} ms; round trip p50 - engine p50 = {result['overhead_over_engine_p50_ms']:.2f} ms"
          f" (per-cycle overhead p50 {result['overhead_ms']['p50']:.2f} p99 {result['overhead_ms']['p99']:.2f},"
          f" of which the pipeline p50 {result['pipeline_overhead_ms']['p50']:.2f}); TLSimu alone: trigger -> frame"
          f" p50 {camera_ms['p50']:.2f} ms, so round trip - engine - camera = "
          f"{result['overhead_over_engine_and_camera_p50_ms']:.2f} ms;"
          f" results match the log: {result['matched']}")
    return result


async def _plc(endpoint: str, cycles: int) -> list[dict]:
    from asyncua import Client, ua

    client = Client(endpoint)
    deadline = time.monotonic() + 120
    while True:
        try:
            await client.connect()
            break
        except (OSError, asyncio.TimeoutError, ua.UaError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    try:
        ns = await client.get_namespace_index("urn:ard-edge")
        node = {n: client.get_node(ua.NodeId(f"line1.{n}", ns))
                for n in ("Ready", "Trigger", "ResultReady", "ResultAck", "ResultFrameId", "ResultVerdict")}
        while not await node["Ready"].read_value():
            await asyncio.sleep(0.05)
        trips = []
        for _ in range(cycles):
            start = time.perf_counter()
            await node["Trigger"].write_value(True)
            while not await node["ResultReady"].read_value():
                pass  # a PLC polls in its cycle; here as fast as reads come back
            trips.append({"round_trip_ms": (time.perf_counter() - start) * 1000.0,
                          "frame_id": await node["ResultFrameId"].read_value(),
                          "verdict": await node["ResultVerdict"].read_value()})
            await node["ResultAck"].write_value(True)
            while await node["ResultReady"].read_value():
                pass
        return trips
    finally:
        await client.disconnect()


# -- overhead ----------------------------------------------------------------------------------


WEBHOOK_SERVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"])); self.send_response(200)
        self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def overhead(args) -> dict:
    from ard_edge import open_engine
    from ard_edge.config import from_dict
    from ard_edge.runtime import AppConfig, Pipeline, RuntimeConfig
    from ard_edge.runtime.outputs import context_of, output_sinks

    work = args.work_dir / "outputs_overhead"
    shutil.rmtree(work, ignore_errors=True)
    broker = Broker(work / "broker").start()
    hook_port = free_port()
    hook = subprocess.Popen([sys.executable, "-c", WEBHOOK_SERVER, str(hook_port)])
    app = from_dict(AppConfig, {"station": "bench", "outputs": {
        "mqtt": {"port": broker.port},
        "webhook": {"url": f"http://127.0.0.1:{hook_port}/hook", "send": "all"},
        "opcua": {"endpoint": f"opc.tcp://127.0.0.1:{free_port()}/ard-edge/"}}})
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    try:
        with open_engine(export_untrained(args.work_dir, 256), threads=1) as engine:
            half = raw_engine_fps(engine, 1, 3.0)[0] / 2
            for pair in range(args.pairs):
                for side in ("off", "on"):
                    out = work / f"{side}{pair}"
                    source = replay_640x480(args.work_dir, half)
                    sinks = output_sinks(app, out, {}) if side == "on" else []
                    settings = RuntimeConfig(batch=1, max_wait_ms=0.0)
                    pipeline = Pipeline(source, engine, settings, sinks, duration_s=args.seconds, context=context_of(app))
                    pipeline.start()
                    summary = pipeline.join().to_dict()
                    runs[side].append({"overhead_ms": summary["overhead_ms"], "lost": summary["lost"],
                                       "engine_ms_p50": summary["engine_ms_p50"], "sinks": summary["sink_stats"],
                                       "decisions": sum(summary["decisions"].values())})
                    print(f"{side}: overhead p50 {summary['overhead_ms']['p50']:.3f} p99 {summary['overhead_ms']['p99']:.3f}"
                          f" ms, engine p50 {summary['engine_ms_p50']:.2f} ms, {runs[side][-1]['decisions']} decisions,"
                          f" sinks {summary['sink_stats']}", flush=True)
    finally:
        hook.terminate()
        broker.stop()
    p50 = {side: [r["overhead_ms"]["p50"] for r in rs] for side, rs in runs.items()}
    differences = [on - off for off, on in zip(p50["off"], p50["on"])]
    result = {"camera_fps": half, "seconds": args.seconds, "runs": runs,
              "median_p50_ms": {side: statistics.median(v) for side, v in p50.items()},
              "median_paired_difference_ms": statistics.median(differences)}
    print(f"replay {half:.1f} fps, batch 1: overhead p50 median off {result['median_p50_ms']['off']:.3f} ms,"
          f" on {result['median_p50_ms']['on']:.3f} ms; median paired difference {result['median_paired_difference_ms']:+.3f} ms")
    return result


# -- soak --------------------------------------------------------------------------------------


class _Ids:
    """A subscriber keeping only (run_id, frame_id) of each decision, so it adds no memory growth of note."""

    def __init__(self, port: int):
        import paho.mqtt.client as mqtt

        self.ids: set[tuple[str, int]] = set()
        self.messages = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-subscriber", clean_session=False)
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.on_connect = lambda c, *_: c.subscribe("ard-edge/+/+/decision", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        decision = json.loads(message.payload)
        self.messages += 1
        self.ids.add((decision["run_id"], decision["frame_id"]))


def soak(args) -> dict:
    from ard_edge import open_engine
    from ard_edge.config import from_dict
    from ard_edge.runtime import AppConfig, DecisionLog, EvidenceSaver, Pipeline, RuntimeConfig
    from ard_edge.runtime.outputs import context_of, output_sinks
    from soak import WARMUP_FRAMES, RssSampler, camera, export_small_model

    model = export_small_model(args.work_dir, 0.05)
    out = args.work_dir / "outputs_soak"
    shutil.rmtree(out, ignore_errors=True)
    broker = Broker(out / "broker").start()
    subscriber = _Ids(broker.port)
    app = from_dict(AppConfig, {"station": "soak", "outputs": {"mqtt": {"port": broker.port}}})
    settings = RuntimeConfig(batch=4, rotate_mb=1.0, min_free_disk_mb=100.0)
    restarts = []
    try:
        with open_engine(model) as engine:
            sinks = [DecisionLog(out, settings.rotate_mb), EvidenceSaver.from_settings(out, settings),
                     *output_sinks(app, out, {})]
            pipeline = Pipeline(camera(args.frame_rate), engine, settings, sinks, max_frames=args.frames,
                                context=context_of(app))
            with RssSampler(pipeline) as rss:
                pipeline.start()
                for fraction in (0.25, 0.5, 0.75):
                    while pipeline.running and pipeline.status().frames_captured < fraction * args.frames:
                        time.sleep(0.05)
                    broker.stop()
                    time.sleep(args.outage_s)
                    broker.start()
                    restarts.append(pipeline.status().frames_captured)
                summary = pipeline.join()
        deadline = time.monotonic() + 60
        logged = set()
        for path in sorted(out.glob("decisions*.jsonl")):
            logged |= {(d["run_id"], d["frame_id"]) for d in map(json.loads, path.read_text().splitlines())}
        while not logged <= subscriber.ids and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        subscriber.client.loop_stop()
        broker.stop()
    baseline = next((r for n, r in rss.samples if n >= WARMUP_FRAMES), rss.samples[0][1])
    growth_mb = (rss.samples[-1][1] - baseline) / (1024 * 1024)
    decided = sum(summary.decisions.values())
    missing = len(logged - subscriber.ids)
    ok = summary.lost == 0 and len(logged) == decided and missing == 0 and growth_mb < 50
    result = {"summary": summary.to_dict(), "restarted_at_frames": restarts, "decisions_logged": len(logged),
              "mqtt_unique": len(subscriber.ids & logged), "mqtt_messages": subscriber.messages,
              "mqtt_missing": missing, "rss_growth_mb": growth_mb, "pass": ok}
    print(f"frames {summary.frames_captured}: decided {decided}, dropped {summary.dropped}, lost {summary.lost};"
          f" broker restarted at frames {restarts}; log {len(logged)}; MQTT unique {result['mqtt_unique']}"
          f" ({subscriber.messages} messages, {missing} missing); sinks {summary.sink_stats};"
          f" RSS growth {growth_mb:+.1f} MB -> {'PASS' if ok else 'FAIL'}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("handshake", "overhead", "soak"))
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument("--engine", type=Path, default=Path("demo/engines/demo.engine"), help="handshake: the engine")
    parser.add_argument("--cycles", type=int, default=500, help="handshake: Trigger/ResultAck cycles")
    parser.add_argument("--engine-threads", type=int, help="handshake: run --engine-threads (default: the engine's own)")
    parser.add_argument("--warmup", type=int, default=20, help="handshake: first cycles left out")
    parser.add_argument("--pairs", type=int, default=6, help="overhead: off/on run pairs")
    parser.add_argument("--seconds", type=float, default=15.0, help="overhead: length of each run")
    parser.add_argument("--frames", type=int, default=10_000, help="soak: frames")
    parser.add_argument("--frame-rate", type=float, default=200.0, help="soak: viky frame rate (max 200)")
    parser.add_argument("--outage-s", type=float, default=2.0, help="soak: how long each broker outage lasts")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    result = {"handshake": handshake, "overhead": overhead, "soak": soak}[args.what](args)
    result.update(cpu_count=os.cpu_count(), loadavg_after=os.getloadavg())
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result.get("pass", True) else 1


if __name__ == "__main__":
    sys.exit(main())
