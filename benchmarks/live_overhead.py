#!/usr/bin/env python3
"""What ``run --http`` costs the line: pipeline overhead with no server, with a server and no viewer,
and with a viewer connected, in alternating runs on one machine.

Each run is ``pipeline_overhead.py``'s (b_replay) measurement in a fresh process: a paced
640x480 folder replay at about half the engine's rate, batch 1, one engine thread; overhead is
capture-to-decision latency minus the engine time of the frame's batch. The viewer is a
separate process that does what the page does: it follows ``/api/events`` and fetches
``/frame.jpg`` whenever a newer decision exists, one image at a time (the server caps the
encoding at 5 fps). On a shared machine the load drifts, so the variants alternate and the
differences are paired per round.

    .venv/bin/python benchmarks/live_overhead.py --rounds 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from pipeline_overhead import WORK_DIR

VARIANTS = ("none", "idle", "viewer")

ONE_RUN = """
import json, subprocess, sys
from pathlib import Path
import pipeline_overhead as po
import ard_edge
from ard_edge.runtime.config import HttpConfig
from ard_edge.runtime.live import LiveServer
work, fps, seconds, variant, script = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
server = LiveServer(HttpConfig(listen="127.0.0.1:0")).start() if variant != "none" else None
viewer = subprocess.Popen([sys.executable, script, "--viewer", server.url]) if variant == "viewer" else None
with ard_edge.open_engine(po.export_untrained(work, 256), threads=1) as engine:
    summary = po.run(engine, fps, 1, seconds, po.replay_640x480(work, fps), sinks=[server.board.sink()] if server else None)
encoded = int(server.board.metrics.registry.get_sample_value("ard_edge_live_frames_encoded_total")) if server else 0
if viewer:
    viewer.terminate()
    viewer.wait()
if server:
    server.stop()
print(json.dumps({"overhead_ms": summary["overhead_ms"], "lost": summary["lost"], "encoded": encoded,
                  "decided": sum(summary["decisions"].values())}))
"""


def view(url: str) -> None:
    """Follow the page's event stream and fetch each newer frame, like the page's script."""
    import httpx

    shown: dict[str, int] = {}
    with httpx.Client(timeout=30) as client, client.stream("GET", url + "api/events") as events:
        for line in events.iter_lines():
            if not line.startswith("data: "):
                continue
            for camera, state in json.loads(line[len("data: "):])["cameras"].items():
                if state["seq"] and state["seq"] != shown.get(camera):
                    shown[camera] = state["seq"]
                    client.get(url + "frame.jpg", params={"camera": camera, "seq": state["seq"]})


def one_run(variant: str, work: Path, fps: float, seconds: float) -> dict:
    here = Path(__file__).resolve().parent
    env = dict(os.environ, PYTHONPATH=str(here))
    done = subprocess.run([sys.executable, "-c", ONE_RUN, str(work), str(fps), str(seconds), variant, __file__],
                          env=env, capture_output=True, text=True, check=True, cwd="/")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--fps", type=float, default=8.0, help="replay pace; about half the engine's rate")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each run")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--viewer", metavar="URL", help=argparse.SUPPRESS)  # the viewer process itself
    args = parser.parse_args()
    if args.viewer:
        view(args.viewer)
        return 0

    p50: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    runs = []
    for _ in range(args.rounds):
        for variant in VARIANTS:
            run = one_run(variant, args.work_dir, args.fps, args.seconds)
            p50[variant].append(run["overhead_ms"]["p50"])
            runs.append({"variant": variant, **run})
            print(f"{variant:6s}: overhead p50 {run['overhead_ms']['p50']:.2f} p99 {run['overhead_ms']['p99']:.2f} ms,"
                  f" {run['decided']} decisions, {run['encoded']} frames encoded, lost {run['lost']}", flush=True)
    medians = {variant: statistics.median(values) for variant, values in p50.items()}
    paired = {variant: statistics.median(b - a for a, b in zip(p50["none"], p50[variant])) for variant in VARIANTS[1:]}
    print("median overhead p50: " + ", ".join(f"{v} {m:.3f} ms" for v, m in medians.items())
          + "; median paired difference vs none: " + ", ".join(f"{v} {d:+.3f} ms" for v, d in paired.items()))
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "median_p50_ms": medians, "paired_vs_none_ms": paired,
                                         "cpu_count": os.cpu_count()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
