#!/usr/bin/env bash
# GPU acceptance check for build-engine and the TensorRT engine.
#
# Builds FP32, FP16 and INT8 TensorRT engines from the demo model, compares each with ONNX
# Runtime running the FP32 ONNX on the demo images (decision agreement, largest score error
# relative to the threshold), prints latency (host h2d+compute+d2h and GPU compute), and exits
# non-zero if anything fails.
#
# usage: scripts/gpu_check.sh [--dry-run] [DEMO_DIR]
#   DEMO_DIR    holds export/demo.onnx and data/ (default: demo)
#   --dry-run   check the prerequisites and print what would run; builds nothing, needs no GPU
#
# environment (all optional):
#   PYTHON      interpreter with ard-edge installed (default: .venv/bin/python, else python3)
#   ONNX, DATA  override $DEMO_DIR/export/demo.onnx and $DEMO_DIR/data
#   OUT_DIR     where engines and the timing cache go (default: $DEMO_DIR/engines)
#   BATCH       batch range for a dynamic-batch export (default: 1:1:4)
#   MAX_IMAGES  images compared (default: 64); ITERATIONS  timed runs per engine (default: 200)
#   FP32_MAX_ERR FP16_MAX_ERR INT8_MAX_ERR            score error / threshold (1e-3, 2e-2, 0.15)
#   FP32_MIN_AGREE FP16_MIN_AGREE INT8_MIN_AGREE      decision agreement (1.0, 0.99, 0.98)
#
# exit: 0 all checks passed, 1 a check failed, 2 usage error, 3 prerequisites missing
set -euo pipefail

usage() { echo "usage: scripts/gpu_check.sh [--dry-run] [DEMO_DIR]" >&2; }

DRY_RUN=0
DEMO_DIR=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "unknown option: $arg" >&2; usage; exit 2 ;;
    *)
      if [[ -n "$DEMO_DIR" ]]; then echo "one DEMO_DIR only" >&2; usage; exit 2; fi
      DEMO_DIR="$arg" ;;
  esac
done
DEMO_DIR="${DEMO_DIR:-demo}"
DEMO_DIR="${DEMO_DIR%/}"
ONNX="${ONNX:-$DEMO_DIR/export/demo.onnx}"
DATA="${DATA:-$DEMO_DIR/data}"
OUT_DIR="${OUT_DIR:-$DEMO_DIR/engines}"
BATCH="${BATCH:-1:1:4}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

missing=0
exists() {  # exists -f|-d PATH
  if test "$1" "$2"; then echo "$2"; else echo "$2 not found"; return 1; fi
}
check() {  # check NAME COMMAND...: print "ok NAME: <output>" or "MISSING NAME: <output>"
  local name="$1"; shift
  local output
  if output="$("$@" 2>&1)"; then
    echo "  ok       $name: ${output//$'\n'/ }"
  else
    echo "  MISSING  $name: ${output//$'\n'/ }"
    missing=1
  fi
}

echo "gpu_check: prerequisites"
check "python" "$PYTHON" -c "import sys; print(sys.version.split()[0])"
check "ard_edge" "$PYTHON" -c "import ard_edge; print(ard_edge.__version__)"
check "nvidia-smi" bash -c "command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader || { echo 'not found'; exit 1; }"
check "tensorrt+pycuda+GPU" "$PYTHON" -c "
from ard_edge.engines.tensorrt import probe
environment, why = probe()
print(why)
raise SystemExit(0 if environment else 1)"
check "onnx model" exists -f "$ONNX"
check "images" exists -d "$DATA"

# A dynamic-batch export gets the --batch range; a fixed one builds at its own batch.
BATCH_ARGS=(--batch "$BATCH")
if [[ -f "$ONNX" ]]; then
  fixed="$("$PYTHON" -c "
import sys, onnx
from ard_edge.deploy.build import onnx_batch
print(onnx_batch(onnx.load(sys.argv[1], load_external_data=False)) or '')" "$ONNX" 2>/dev/null || true)"
  if [[ -n "$fixed" ]]; then BATCH_ARGS=(); fi
fi

build_command() {  # build_command PRECISION -> the build-engine command line, one word per line
  local precision="$1"
  local args=("$PYTHON" -m ard_edge build-engine --onnx "$ONNX" --precision "$precision"
              --out "$OUT_DIR/demo_$precision.engine" --target tensorrt
              --timing-cache "$OUT_DIR/timing.cache" "${BATCH_ARGS[@]}")
  if [[ "$precision" == int8 ]]; then args+=(--calibration-data "$DATA"); fi
  printf '%s\n' "${args[@]}"
}

PRECISIONS=(fp32 fp16 int8)
if (( DRY_RUN )); then
  echo "gpu_check: dry run, would run:"
  for precision in "${PRECISIONS[@]}"; do
    mapfile -t cmd < <(build_command "$precision")
    echo "  ${cmd[*]}"
  done
  echo "  compare $OUT_DIR/demo_{fp32,fp16,int8}.engine with ONNX Runtime on $ONNX over up to ${MAX_IMAGES:-64} images from $DATA"
  echo "  time ${ITERATIONS:-200} runs per engine (host h2d+compute+d2h, GPU compute)"
  if (( missing )); then echo "gpu_check: dry run: prerequisites above are MISSING for a real run"; fi
  exit 0
fi
if (( missing )); then
  echo "gpu_check: prerequisites missing (see above)" >&2
  exit 3
fi

mkdir -p "$OUT_DIR"
for precision in "${PRECISIONS[@]}"; do
  mapfile -t cmd < <(build_command "$precision")
  echo "gpu_check: ${cmd[*]}"
  if ! "${cmd[@]}"; then
    echo "gpu_check: FAILED to build the $precision engine" >&2
    exit 1
  fi
done

"$PYTHON" - "$ONNX" "$DATA" "$OUT_DIR" <<'PY'
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ard_edge.engines import open_engine

onnx_path, data_dir, out_dir = sys.argv[1:4]
max_images = int(os.environ.get("MAX_IMAGES", "64"))
iterations = int(os.environ.get("ITERATIONS", "200"))
limits = {
    "fp32": (float(os.environ.get("FP32_MAX_ERR", "1e-3")), float(os.environ.get("FP32_MIN_AGREE", "1.0"))),
    "fp16": (float(os.environ.get("FP16_MAX_ERR", "2e-2")), float(os.environ.get("FP16_MIN_AGREE", "0.99"))),
    "int8": (float(os.environ.get("INT8_MAX_ERR", "0.15")), float(os.environ.get("INT8_MIN_AGREE", "0.98"))),
}


def load_images(spec):
    suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
    paths = sorted(p for p in Path(data_dir).rglob("*") if p.suffix.lower() in suffixes)[:max_images]
    frames = []
    for path in paths:
        flag = cv2.IMREAD_GRAYSCALE if spec.channels == 1 else cv2.IMREAD_COLOR
        image = cv2.imread(str(path), flag)
        if image is None:
            continue
        if spec.channels == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        image = cv2.resize(image, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
        frames.append(image.reshape(spec.height, spec.width, spec.channels))
    if not frames:
        sys.exit(f"gpu_check: no readable images under {data_dir}")
    return np.stack(frames)


def run_all(engine, frames):
    step = engine.input_spec.max_batch or 1
    scores, decisions = [], []
    for start in range(0, len(frames), step):
        chunk = frames[start:start + step]
        if engine.input_spec.fixed_batch and len(chunk) < step:  # pad a fixed-batch engine's last chunk
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - len(chunk), axis=0)])
        result = engine.infer(chunk)
        keep = min(step, len(frames) - start)
        scores.append(result.score[:keep])
        decisions.append(result.is_anomalous[:keep])
    return np.concatenate(scores), np.concatenate(decisions)


with open_engine(onnx_path) as reference:
    frames = load_images(reference.input_spec)
    threshold = reference.threshold
    want_scores, want_decisions = run_all(reference, frames)
print(f"gpu_check: {len(frames)} images, threshold {threshold:.4g}, {int(want_decisions.sum())} anomalous (fp32 ONNX Runtime)")

failed = []
print(f"{'engine':6} {'agree':>7} {'max err/thr':>12} {'host p50':>9} {'host p99':>9} {'gpu p50':>8}  (ms, batch 1)")
for precision, (max_err, min_agree) in limits.items():
    path = Path(out_dir) / f"demo_{precision}.engine"
    with open_engine(path) as engine:
        scores, decisions = run_all(engine, frames)
        batch = engine.input_spec.min_batch
        one = np.repeat(frames[:1], batch, axis=0)
        engine.warmup(10, batch=batch)
        host, gpu = [], []
        for _ in range(iterations):
            start = time.perf_counter()
            engine.infer(one)
            timings = getattr(engine, "last_timings_ms", None) or {}
            host.append(timings.get("host_total_ms", (time.perf_counter() - start) * 1e3))
            gpu.append(timings.get("compute_ms", float("nan")))
    agreement = float(np.mean(decisions == want_decisions))
    error = float(np.max(np.abs(scores - want_scores)) / max(abs(threshold), 1e-12))
    ok = agreement >= min_agree and error <= max_err and np.isfinite(scores).all()
    print(f"{precision:6} {agreement:7.3%} {error:12.3g} {np.percentile(host, 50):9.3f} "
          f"{np.percentile(host, 99):9.3f} {np.percentile(gpu, 50):8.3f}  {'ok' if ok else 'FAIL'}"
          f" (limits: agree >= {min_agree}, err <= {max_err})")
    if not ok:
        failed.append(precision)
if failed:
    sys.exit(f"gpu_check: FAILED: {', '.join(failed)}")
print("gpu_check: all engines agree with ONNX Runtime")
PY
