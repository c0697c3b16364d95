#!/usr/bin/env bash
# INT8 against FP32 on real data: calibrate both profiles on DATA's good images (the accuracy
# gate reports the AUROC change on held-out goods and DATA/test defects), then time FP32 against
# cpu-profile INT8 at batch 1 with `ard-edge bench` (docs/benchmarks.md).
# usage: benchmarks/int8_vs_fp32.sh CHECKPOINT DATA [OUT_DIR]   (THREADS=N, default 2)
set -euo pipefail
checkpoint="$1"
data="$2"
out="${3:-/tmp/ard-edge-int8}"
mkdir -p "$out"
ard-edge export --model "$checkpoint" --out "$out/fp32.onnx" --channels 1 --batch dynamic
for profile in cpu tensorrt; do
  ard-edge calibrate --onnx "$out/fp32.onnx" --data "$data" --profile "$profile" \
    --out "$out/$profile.int8.onnx" --max-auroc-drop 0.005
done
ard-edge bench --engine "$out/fp32.onnx" --engine "$out/cpu.int8.onnx" --engine "$out/tensorrt.int8.onnx" \
  --batch 1,8 --iterations 20 --warmup 3 --repeat 3 --threads "${THREADS:-2}" \
  --json "$out/bench.json" --markdown "$out/bench.md"
