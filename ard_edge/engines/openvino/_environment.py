"""Is OpenVINO usable here, and what does this machine look like to it?"""

from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import Any

from ard_edge.engines.sidecar import rebuild_command
from ard_edge.errors import EngineError, require

# The CPU features OpenVINO's CPU plugin picks kernels by: int8 (VNNI, AMX) and bf16/fp16 paths.
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8",
             "amx_fp16")
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")


def cpu_flags() -> list[str]:
    """The :data:`ISA_FLAGS` this CPU reports in /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return []
    match = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
    present = set(match.group(1).split()) if match else set()
    return [flag for flag in ISA_FLAGS if flag in present]


def current_environment(device: str = "CPU") -> dict[str, Any]:
    """OpenVINO version, the device's name and capabilities, and the CPU's ISA flags (sidecar keys)."""
    ov = require("openvino", "openvino")
    core = ov.Core()
    return {
        "openvino_version": ov.get_version(),
        "device": device,
        "device_name": core.get_property(device, "FULL_DEVICE_NAME"),
        "optimization_capabilities": list(core.get_property(device, "OPTIMIZATION_CAPABILITIES")),
        "cpu_isa": cpu_flags(),
        "machine": platform.machine(),
    }


def probe() -> tuple[dict[str, Any] | None, str]:
    """(environment, reason): OpenVINO's view of this CPU, or None and why the target does not fit here."""
    if platform.machine().lower() not in X86_MACHINES:
        return None, f"openvino is for x86 CPUs here, this is {platform.machine()}"
    try:
        import openvino  # noqa: F401
    except ImportError:
        return None, "openvino is not installed"
    except Exception as exc:  # a broken install fails while loading its shared libraries
        return None, f"openvino does not load ({exc})"
    environment = current_environment()
    return environment, f"OpenVINO {environment['openvino_version'].split('-')[0]} on {environment['device_name']}"


def _release(version: str) -> tuple[int, ...]:
    """``'2026.4.1-22982-e213a14...'`` -> (2026, 4, 1)."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("-")[0])[:3])


def check_openvino_version(sidecar: dict[str, Any], engine_path: str | Path) -> None:
    """Refuse IR written by a newer OpenVINO than this one: older readers lack its newer operations.

    IR from an older OpenVINO is read by newer ones, so that passes.
    """
    built = str(sidecar["environment"].get("openvino_version", ""))
    here = require("openvino", "openvino").get_version()
    if built and _release(built) > _release(here):
        raise EngineError(f"{engine_path} was built with OpenVINO {built.split('-')[0]} but this machine has"
                          f" {here.split('-')[0]}: upgrade openvino, or rebuild it on this machine with:"
                          f" {rebuild_command(sidecar, engine_path)}")
