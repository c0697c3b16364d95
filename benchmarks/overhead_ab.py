#!/usr/bin/env python3
"""The runtime's overhead, this checkout against an older one, in alternating runs on one machine.

Each run is ``pipeline_overhead.py``'s (b_replay) measurement in a fresh process: a paced
640x480 folder replay, batch 1, one engine thread. On a shared machine the load drifts, so
the two sides alternate and the paired differences are reported.

    git archive 903c737 | tar -x -C /tmp/base
    .venv/bin/python benchmarks/overhead_ab.py --base /tmp/base --pairs 10
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

ONE_RUN = """
import json, sys
from pathlib import Path
import pipeline_overhead as po
import ard_edge
work, fps, seconds = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
with ard_edge.open_engine(po.export_untrained(work, 256), threads=1) as engine:
    summary = po.run(engine, fps, 1, seconds, po.replay_640x480(work, fps))
print(json.dumps({"package": ard_edge.__file__, "overhead_ms": summary["overhead_ms"], "lost": summary["lost"]}))
"""


def one_run(base: Path | None, work: Path, fps: float, seconds: float) -> dict:
    here = Path(__file__).resolve().parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(base) if base else "", str(here)) if p))
    done = subprocess.run([sys.executable, "-c", ONE_RUN, str(work), str(fps), str(seconds)], env=env,
                          capture_output=True, text=True, check=True, cwd="/")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="a checkout (git archive) of the older commit")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--fps", type=float, default=8.0, help="replay pace; about half the engine's rate")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each run")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    args = parser.parse_args()

    results: dict[str, list[float]] = {"old": [], "new": []}
    for _ in range(args.pairs):
        for side, base in (("old", args.base), ("new", None)):
            run = one_run(base, args.work_dir, args.fps, args.seconds)
            results[side].append(run["overhead_ms"]["p50"])
            print(f"{side}: overhead p50 {run['overhead_ms']['p50']:.2f} ms, lost {run['lost']} ({run['package']})",
                  flush=True)
    differences = [new - old for old, new in zip(results["old"], results["new"])]
    print(f"median p50: old {statistics.median(results['old']):.3f} ms, new {statistics.median(results['new']):.3f} ms;"
          f" median paired difference {statistics.median(differences):+.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
