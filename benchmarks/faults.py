#!/usr/bin/env python3
"""Slow faults, run for real against ``ard-edge run`` on the viky.cti simulator (too slow for the suite).

1. kill -9 and restart, ``--cycles`` times: each run is killed mid-stream (no summary, maybe a
   partial last line, maybe half-written evidence images); the next run on the same ``--out``
   must repair the log's tail, clean the killed run's temporary files, and append. A last run
   ends normally. Checked: every line of every decision file is strict JSON; the partial lines
   moved aside are counted; for the run that finished, lines with its run id == frames captured
   - frames dropped.
2. Full disk during a camera stream: a tmpfs of ``--disk-kb`` (needs root; skipped, saying so,
   otherwise). Checked: exit 1 with one error line, the log holds exactly the lines the summary
   says were written, written + not written == captured - dropped.

    .venv/bin/python benchmarks/faults.py --json /tmp/faults.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from soak import WORK_DIR, export_small_model

ARD_EDGE = Path(sys.executable).parent / "ard-edge"


def strict_lines(path: Path) -> list[dict]:
    def refuse(token):
        raise ValueError(f"{path}: non-standard JSON token {token}")

    text = path.read_text()
    if text and not text.endswith("\n"):
        raise ValueError(f"{path} ends in a partial line")
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


def write_config(folder: Path) -> Path:
    config = folder / "ard-edge.yaml"
    config.write_text('cameras:\n  cam0:\n    simulator: true\n    serial: "1"\n    pixel_format: Mono8\n'
                      "    width: 128\n    height: 100\n    frame_rate: 100\n"
                      "runtime:\n  batch: 4\n  save_pass_every: 3\n  min_free_disk_mb: 0\n")
    return config


def run_command(model: Path, config: Path, out: Path, *extra) -> list[str]:
    return [str(ARD_EDGE), "run", "--camera", "cam0", "--engine", str(model), "--config", str(config),
            "--out", str(out), *map(str, extra)]


def lines_in(out: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in out.glob("decisions*.jsonl"))


def kill_and_restart(model: Path, work: Path, cycles: int) -> dict:
    out, config = work / "killed", write_config(work)
    shutil.rmtree(out, ignore_errors=True)
    killed_at = []
    for cycle in range(cycles):
        proc = subprocess.Popen(run_command(model, config, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = lines_in(out) + 50 + 37 * cycle  # vary where the kill lands
        deadline = time.monotonic() + 120
        while lines_in(out) < target and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at.append(lines_in(out))
    final = subprocess.run(run_command(model, config, out, "--max-frames", 300), capture_output=True, text=True,
                           timeout=300)
    temps_left = [str(p) for p in out.rglob("*.tmp")]
    lines = [line for path in sorted(out.glob("decisions*.jsonl")) for line in strict_lines(path)]
    summary = json.loads((out / "summary.json").read_text())
    own = sum(line["run_id"] == summary["run_id"] for line in lines)
    result = {
        "cycles": cycles, "lines_after_each_kill": killed_at, "final_exit": final.returncode,
        "lines_total": len(lines), "run_ids": len({line["run_id"] for line in lines}),
        "partial_lines_moved_aside": len(list(out.glob("decisions.jsonl.*.partial"))),
        "final_run": {"captured": summary["frames_captured"], "dropped": summary["dropped"], "lines": own,
                      "lost": summary["lost"]},
        "temp_files_left": temps_left,
    }
    result["pass"] = (final.returncode == 0 and own == summary["frames_captured"] - summary["dropped"]
                      and summary["lost"] == 0 and result["run_ids"] == cycles + 1)
    return result


def full_disk(model: Path, work: Path, disk_kb: int) -> dict:
    disk = work / "disk"
    disk.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={disk_kb}k", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        return {"skipped": f"cannot mount a tmpfs ({mounted.stderr.strip()}): needs root with CAP_SYS_ADMIN"}
    try:
        done = subprocess.run(run_command(model, write_config(work), disk, "--max-frames", 100_000),
                              capture_output=True, text=True, timeout=600)
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        captured = re.search(r"frames captured (\d+): .* dropped (\d+)", done.stdout)
        log_line = re.search(r"decision log: (\d+) lines written, (\d+) not written", done.stdout)
        on_disk = len(strict_lines(disk / "decisions.jsonl"))
        result = {"exit": done.returncode, "error_lines": errors, "on_disk": on_disk,
                  "captured": int(captured[1]), "dropped": int(captured[2]),
                  "written": int(log_line[1]), "unwritten": int(log_line[2]),
                  "temp_files_left": [str(p) for p in disk.rglob("*.tmp")]}
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    result["pass"] = (result["exit"] == 1 and len(result["error_lines"]) == 1 and result["on_disk"] == result["written"]
                      and result["written"] + result["unwritten"] == result["captured"] - result["dropped"])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument("--cycles", type=int, default=5, help="kill -9 / restart cycles")
    parser.add_argument("--disk-kb", type=int, default=2048, help="size of the full-disk tmpfs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    model = export_small_model(args.work_dir, 0.05)
    with tempfile.TemporaryDirectory(prefix="ard-edge-faults-") as tmp:
        work = Path(tmp)
        results = {"kill_and_restart": kill_and_restart(model, work, args.cycles),
                   "full_disk": full_disk(model, work, args.disk_kb), "cpu_count": os.cpu_count()}
    for name, result in results.items():
        if isinstance(result, dict):
            print(f"{name}: {json.dumps(result)}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    ok = all(r.get("pass", "skipped" in r) for r in results.values() if isinstance(r, dict))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
