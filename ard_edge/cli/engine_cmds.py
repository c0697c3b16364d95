"""``ard-edge build-engine``: ONNX -> TensorRT plan or ONNX Runtime-optimized graph, with sidecar."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import click

from ard_edge._io import BYTES_PER_MB
from ard_edge.calibration import DEFAULT_MAX_AUROC_DROP, DEFAULT_MIN_AGREEMENT, DEFAULT_NUM_IMAGES
from ard_edge.cli._common import FiniteFloat, progress_bar
from ard_edge.cli.calibrate_cmds import format_report
from ard_edge.errors import AccuracyGateRefused, ConfigError

_SPINNER = "|/-\\"
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_batch_range(text: str):
    """``'1:4:8'`` -> BatchRange(1, 4, 8); ``'4'`` -> BatchRange(4, 4, 4)."""
    from ard_edge.engines.base import BatchRange

    parts = str(text).strip().split(":")
    if len(parts) not in (1, 3) or not all(re.fullmatch(r"\d+", p.strip()) for p in parts):
        raise ConfigError(f"--batch {text!r}: expected MIN:OPT:MAX (e.g. 1:4:8) or one size (e.g. 4)")
    values = [int(p) for p in parts] * (3 if len(parts) == 1 else 1)
    low, opt, high = values
    if low < 1:
        raise ConfigError(f"--batch {text!r}: batch sizes start at 1")
    if not low <= opt <= high:
        raise ConfigError(f"--batch {text!r}: needs MIN <= OPT <= MAX")
    return BatchRange(low, opt, high)


def parse_size(text: str) -> int:
    """``'1G'`` -> 1073741824; units K, M, G, T are powers of 1024 (``MB``/``MiB`` accepted)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(text))
    if not match:
        raise ConfigError(f"--workspace {text!r}: expected a size such as 512M, 1G or 1.5G")
    value = float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]
    if value < 1:
        raise ConfigError(f"--workspace {text!r}: must be at least 1 byte")
    return int(value)


class _BarProgress:
    """Draws build progress on stderr: a bar per TensorRT phase, or a spinner with elapsed time."""

    def __init__(self):
        self._bars: dict[str, object] = {}
        self._depth: dict[str, int] = {}
        self._spinner = None
        self._lock = threading.Lock()  # TensorRT calls back from its own threads

    def phase_start(self, name, parent, num_steps):
        with self._lock:
            depth = self._depth.get(parent, -1) + 1 if parent else 0
            self._depth[name] = depth
            self._bars[name] = progress_bar(num_steps, ("  " * depth) + name, "step", position=depth,
                                            leave=depth == 0)

    def step(self, name, step):
        with self._lock:
            bar = self._bars.get(name)
            if bar is not None:
                bar.n = step + 1
                bar.refresh()
        return True

    def phase_finish(self, name):
        with self._lock:
            bar = self._bars.pop(name, None)
            self._depth.pop(name, None)
            if bar is not None:
                bar.n = bar.total or bar.n
                bar.close()

    def tick(self, elapsed_s):
        with self._lock:
            if self._spinner is None:
                self._spinner = progress_bar(None, "", bar_format="{desc}")
            frame = _SPINNER[int(elapsed_s * 4) % len(_SPINNER)]
            self._spinner.set_description_str(f"{frame} building ({elapsed_s:.0f} s)")

    def close(self):
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()
            if self._spinner is not None:
                self._spinner.close()
                self._spinner = None


@click.command("build-engine")
@click.option("--onnx", "onnx_path", type=click.Path(path_type=Path), metavar="FILE", help="ard-edge ONNX export (fp32, or int8 Q/DQ from ard-edge calibrate).")
@click.option("--precision", default="fp32", metavar="fp32|fp16|bf16|mixed|int8", show_default=True, help="Engine precision; int8 calibrates an fp32 ONNX with --calibration-data; mixed (OpenVINO) runs the memory bank's search in bf16 and the rest in fp32; on OpenVINO every precision but fp32 is gated on --calibration-data.")
@click.option("--out", "out_path", type=click.Path(path_type=Path), metavar="FILE", help="Engine to write, e.g. engines/NAME.engine (sidecar: FILE.json).")
@click.option("--target", default="auto", metavar="auto|tensorrt|openvino|onnxruntime|triton", show_default=True, help="auto: TensorRT when a GPU, TensorRT and pycuda are present, else OpenVINO on an x86 CPU where it is installed, else ONNX Runtime. triton: a Triton model repository at --out.")
@click.option("--calibration-data", type=click.Path(path_type=Path), metavar="DIR", help="Good images to calibrate an fp32 ONNX for int8.")
@click.option("--batch", "batch_text", metavar="MIN:OPT:MAX", help="Batch range of a dynamic-batch ONNX (default 1:1:1); a fixed export's batch otherwise.")
@click.option("--workspace", metavar="SIZE", help="TensorRT workspace limit, e.g. 512M or 2G.")
@click.option("--dla", "dla_core", type=int, metavar="CORE", help="Jetson DLA core (fp16/int8), falling back to the GPU per layer.")
@click.option("--timing-cache", type=click.Path(path_type=Path), metavar="FILE", help="TensorRT timing cache: loaded if present, saved after the build.")
@click.option("--max-auroc-drop", type=FiniteFloat(), default=DEFAULT_MAX_AUROC_DROP, show_default=True, help="Calibration gate: largest image AUROC loss allowed.")
@click.option("--min-agreement", type=FiniteFloat(), default=DEFAULT_MIN_AGREEMENT, show_default=True, help="Calibration gate: smallest decision agreement with fp32.")
@click.option("--calibration-images", type=int, default=DEFAULT_NUM_IMAGES, show_default=True, help="Images used for calibration.")
@click.option("--name", "model_name", default="ard", show_default=True, help="--target triton: the model's name in the repository.")
@click.option("--instances", type=int, default=1, show_default=True, help="--target triton: model instances (instance_group count).")
@click.option("--kind", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True, help="--target triton: instance kind; gpu with TensorRT here writes a TensorRT plan.")
@click.option("--max-wait-ms", type=FiniteFloat(min=0, max=60_000), default=2.0, show_default=True, help="--target triton: the dynamic batcher's queue delay.")
def build_engine(onnx_path, precision, out_path, target, calibration_data, batch_text, workspace, dla_core,
                 timing_cache, max_auroc_drop, min_agreement, calibration_images, model_name, instances, kind,
                 max_wait_ms):
    """Build a TensorRT, OpenVINO or ONNX Runtime engine (or a Triton model repository) from an ard-edge ONNX model.

    INT8 from an FP32 model calibrates first; if the accuracy gate refuses, nothing is written and
    the command exits with status 3.
    """
    import dataclasses

    from ard_edge.deploy import BuildRequest, check_request, choose_target
    from ard_edge.deploy import build_engine as build

    if onnx_path is None or out_path is None:
        raise ConfigError("build-engine needs --onnx FILE and --out FILE (e.g. --out engines/NAME.engine)")
    request = BuildRequest(
        onnx=onnx_path,
        out=out_path,
        precision=precision,
        target=target,
        calibration_data=calibration_data,
        batch=parse_batch_range(batch_text) if batch_text is not None else None,
        workspace_bytes=parse_size(workspace) if workspace is not None else None,
        dla_core=dla_core,
        timing_cache=timing_cache,
        max_auroc_drop=max_auroc_drop,
        min_agreement=min_agreement,
        calibration_images=calibration_images,
    )
    if target == "triton":
        from ard_edge.deploy.triton import TritonOptions

        _build_triton(request, TritonOptions(model_name, instances, kind, max_wait_ms))
        return
    check_request(request)  # everything cheap first: probing TensorRT loads CUDA
    chosen, reason = choose_target(target)
    click.echo(f"target: {chosen} ({reason})")
    progress = _BarProgress()
    try:
        sidecar = build(dataclasses.replace(request, target=chosen), progress=progress, target_reason=reason)
    except AccuracyGateRefused as exc:
        progress.close()  # the gate's numbers after the bars, before the error line
        click.echo(format_report(exc.report), err=True)
        raise
    finally:
        progress.close()
    if (sidecar.get("calibration") or {}).get("gate"):
        click.echo(format_report(sidecar["calibration"]))
    if sidecar.get("gate"):  # OpenVINO: the gate of the built engine itself
        click.echo(format_report({"gate": sidecar["gate"]}))
    batch = sidecar["batch"]
    size_mb = sidecar["engine"]["bytes"] / BYTES_PER_MB
    click.echo(
        f"wrote {out_path} ({sidecar['backend']}, {sidecar['precision']}, batch "
        f"{batch['min']}:{batch['opt']}:{batch['max']}, {size_mb:.1f} MB, {sidecar['build']['time_s']:.1f} s) "
        f"and {out_path}.json"
    )


def _build_triton(request, options) -> None:
    from ard_edge.deploy.triton import build_triton_repository

    progress = _BarProgress()
    try:
        written = build_triton_repository(request, options, progress=progress)
    finally:
        progress.close()
    batch = written["batch"]
    click.echo(f"wrote {written['model_dir']}/{written['version']}/{written['file']} and config.pbtxt ({written['backend']}"
               f" backend, {written['precision']}, max batch {batch['max']}, preferred {batch['opt']}/{batch['max']};"
               f" {written['reason']})")
