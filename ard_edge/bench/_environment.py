"""What the machine looked like while it was measured: CPU, GPU, library versions, power mode.

Versions come from the installed distributions' metadata, so describing the machine imports
neither torch nor tensorrt. Every probe is best effort: a missing tool gives None (or 'none'
for the GPU), never an error, because a benchmark report should come out on any machine.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Distribution names to try per library, first found wins (GPU builds ship under other names).
_DISTRIBUTIONS = {
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu11", "tensorrt-lean", "tensorrt-libs"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"),
    "openvino": ("openvino",),
    "torch": ("torch",),
    "numpy": ("numpy",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
    "ard_edge": ("ard-edge",),
}
_PROBE_TIMEOUT_S = 5.0
NVPMODEL_STATUS = Path("/var/lib/nvpmodel/status")
NVPMODEL_CONF = Path("/etc/nvpmodel.conf")


def collect_environment() -> dict[str, Any]:
    """The environment block of a benchmark report (keys documented in docs/bench-json.md)."""
    gpus = gpu_info()
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu_model": cpu_model(),
        "cpu_logical_cores": os.cpu_count(),
        "cpu_physical_cores": _physical_cores(),
        "cpu_affinity_count": cpu_affinity_count(),
        "loadavg": _loadavg(),
        "gpus": gpus,
        "gpu_summary": ", ".join(f"{g['name']} (driver {g['driver_version']})" for g in gpus) or "none",
        "jetson_power_mode": jetson_power_mode(),
        "versions": library_versions(),
    }


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for key, names in _DISTRIBUTIONS.items():
        versions[key] = None
        for name in names:
            try:
                versions[key] = importlib.metadata.version(name)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        if versions[key] is None and key in sys.modules:
            # System installs (JetPack's tensorrt) may carry no pip metadata; ask the module
            # only when something already imported it.
            versions[key] = getattr(sys.modules[key], "__version__", None)
    return versions


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (x86 'model name', Arm 'Hardware'/'Model')."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Hardware", "Model", "cpu model"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine() or "unknown"


def cpu_affinity_count() -> int | None:
    """How many logical CPUs this process may run on (taskset/cgroups may give fewer than exist)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    try:
        import psutil

        return len(psutil.Process().cpu_affinity())
    except Exception:  # psutil has no cpu_affinity on macOS
        return os.cpu_count()


def _physical_cores() -> int | None:
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except Exception:
        return None


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def gpu_info() -> list[dict[str, Any]]:
    """One entry per NVIDIA GPU from ``nvidia-smi``; empty without the tool or a driver."""
    if shutil.which("nvidia-smi") is None:
        return []
    command = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"]
    output = _run(command)
    gpus = []
    for line in (output or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0]:
            memory = int(parts[2]) if parts[2].isdigit() else None
            gpus.append({"name": parts[0], "driver_version": parts[1], "memory_total_mib": memory})
    return gpus


def jetson_power_mode() -> dict[str, Any] | None:
    """The nvpmodel power mode of a Jetson (id and name), or None where there is none."""
    if shutil.which("nvpmodel"):
        output = _run(["nvpmodel", "-q"]) or ""
        name = re.search(r"NV Power Mode\s*:\s*(\S+)", output)
        ident = re.search(r"^\s*(\d+)\s*$", output, re.MULTILINE)
        if name or ident:
            return {
                "id": int(ident.group(1)) if ident else None,
                "name": name.group(1) if name else None,
                "source": "nvpmodel -q",
            }
    try:
        status = NVPMODEL_STATUS.read_text()
    except OSError:
        return None
    match = re.search(r"pmode:(\d+)", status)
    if not match:
        return None
    ident = int(match.group(1))
    return {"id": ident, "name": _power_mode_name(ident), "source": str(NVPMODEL_STATUS)}


def _power_mode_name(ident: int) -> str | None:
    try:
        conf = NVPMODEL_CONF.read_text(errors="replace")
    except OSError:
        return None
    match = re.search(rf"<\s*POWER_MODEL\s+ID={ident}\s+NAME=(\S+?)\s*>", conf)
    return match.group(1) if match else None


def _run(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("%s failed: %s", command[0], exc)
        return None
    return done.stdout if done.returncode == 0 else None
