"""Helpers shared by the accuracy benchmark scripts: machine facts, logged commands, results.md sections."""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS_MD = REPO / "docs" / "results.md"
RESULTS_DIR = REPO / "docs" / "results"
# The CLI of the interpreter that runs the script: the venv's ard-edge when run with .venv/bin/python.
ARD_EDGE = str(Path(sys.executable).with_name("ard-edge"))

# Order of the benchmark sections in docs/results.md; anything else (the lead's intro) stays above.
SECTION_ORDER = (
    "## Surface defects: magnetic tile",
    "## One-class novelty detection: Fashion-MNIST",
)

_TRAIN_DONE = re.compile(r"training (?:done|interrupted[^\n]*?) in (\d+(?:\.\d+)?) s")
_RUN_START = re.compile(r"teacher features: +0%")  # the first progress line of every ard-edge train
_ELAPSED = re.compile(r"epoch \d+/\d+:[^\[\n]*\[((?:\d+:)?\d+:\d+)<")
_THROUGHPUT = re.compile(r"throughput: ([\d.]+) images/s training steps, ([\d.]+) images/s including")


def machine() -> dict:
    """CPU model, core count and the software versions that the numbers depend on."""
    import torch

    from ard_edge import __version__

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ard_edge": __version__,
    }


def machine_line(info: dict) -> str:
    return (
        f"{info['cpu']}, {info['cores']} cores ({info['os']}); Python {info['python']}, "
        f"torch {info['torch']}, ard-edge {info['ard_edge']}"
    )


def display(cmd: list[str], threads: int | None = None) -> str:
    """A command as a user would type it: ``ard-edge ...`` instead of the venv's absolute path."""
    shown = shlex.join("ard-edge" if part == ARD_EDGE else part for part in cmd)
    return f"OMP_NUM_THREADS={threads} {shown}" if threads else shown


def run_logged(cmd: list[str], log: Path, threads: int | None = None, append: bool = False) -> float:
    """Run ``cmd`` with stdout+stderr into ``log``; return its wall time in seconds, raise on failure."""
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"$ {display(cmd)}  > {log}", flush=True)
    started = time.perf_counter()
    with open(log, "a" if append else "w") as handle:
        code = subprocess.call(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    wall_s = time.perf_counter() - started
    if code:
        tail = log.read_text(errors="replace").replace("\r", "\n").strip().splitlines()[-5:]
        raise RuntimeError(f"exit {code}: {display(cmd)}\n  " + "\n  ".join(tail))
    return wall_s


def parse_train_log(log: Path) -> dict:
    """Wall time and throughput that ``ard-edge train`` prints at its end ({} if the log is missing).

    A log appended to by several runs (``--resume`` after an interruption) is split per run. A run
    that printed its end line counts with its own wall time; one that was killed counts with the
    last elapsed time of its progress bar (training loop only, so the sum is a slight underestimate,
    flagged ``train_wall_estimated``). The throughput is the last finished run's.
    """
    if not log.is_file():
        return {}
    text = log.read_text(errors="replace").replace("\r", "\n")
    runs = [chunk for chunk in _RUN_START.split(text) if chunk.strip()]
    found, total, estimated, segments = {}, 0.0, False, 0
    for chunk in runs:
        if match := _TRAIN_DONE.search(chunk):
            total += float(match.group(1))
        elif elapsed := _ELAPSED.findall(chunk):
            total += _seconds(elapsed[-1])
            estimated = True
        else:
            continue
        segments += 1
    if segments:
        found.update(train_wall_s=round(total, 1), train_segments=segments, train_wall_estimated=estimated,
                     completed="training done in" in text)
    if matches := _THROUGHPUT.findall(text):
        found["train_images_per_s"] = float(matches[-1][0])
        found["end_to_end_images_per_s"] = float(matches[-1][1])
    return found


def _seconds(clock: str) -> float:
    """tqdm's elapsed 'MM:SS' or 'H:MM:SS' in seconds."""
    value = 0.0
    for part in clock.split(":"):
        value = value * 60 + int(part)
    return value


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path):
    return json.loads(path.read_text())


def write_section(path: Path, heading: str, body: str) -> None:
    """Replace (or add) the section that starts with ``heading`` in ``path``, up to the next ``## ``.

    Other sections are kept as they are; the benchmark sections keep the order of SECTION_ORDER.
    """
    text = path.read_text() if path.is_file() else ""
    sections = _split_sections(text)
    block = f"{heading}\n\n{body.strip()}\n"
    names = [name for name, _ in sections]
    if heading in names:
        sections[names.index(heading)] = (heading, block)
    else:
        rank = SECTION_ORDER.index(heading) if heading in SECTION_ORDER else len(SECTION_ORDER)
        position = len(sections)
        for index, (name, _) in enumerate(sections):
            if name in SECTION_ORDER and SECTION_ORDER.index(name) > rank:
                position = index
                break
        sections.insert(position, (heading, block))
    parts = [chunk.strip("\n") for _, chunk in sections if chunk.strip()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(parts) + "\n")


def _split_sections(text: str) -> list[tuple[str | None, str]]:
    """(heading, text) chunks at each line starting with ``## ``; the preamble has heading None."""
    sections: list[tuple[str | None, str]] = []
    current, lines = None, []
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            sections.append((current, "".join(lines)))
            current, lines = line.rstrip("\n"), []
        lines.append(line)
    sections.append((current, "".join(lines)))
    return [(name, chunk) for name, chunk in sections if name is not None or chunk.strip()]


def fmt(value, digits: int = 1, scale: float = 100.0) -> str:
    """A metric in 0..1 as a percentage with ``digits`` decimals; '-' when missing."""
    if value is None:
        return "-"
    return f"{value * scale:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
