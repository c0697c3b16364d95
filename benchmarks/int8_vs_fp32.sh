#!/usr/bin/env bash
# INT8 against FP32 on real data: calibrate the cpu profile on DATA's good images, then the
# tensorrt profile from the same ranges cache (ranges do not depend on the profile). The accuracy
# gate reports the AUROC change on held-out goods and DATA/test defects; a refusal is reported and
# the script goes on. Then FP32 and both INT8 graphs are timed with `ard-edge bench`
# (docs/benchmarks.md).
# usage: benchmarks/int8_vs_fp32.sh CHECKPOINT DATA [OUT_DIR]   (THREADS=N, default 1)
set -euo pipefail
checkpoint="$1"
data="$2"
out="${3:-/tmp/ard-edge-int8}"
mkdir -p "$out"
ard-edge export --model "$checkpoint" --out "$out/fp32.onnx" --channels 1 --batch dynamic
status=0
engines=(--engine "$out/fp32.onnx")
ranges=()  # the cpu run's ranges, once this run has made them
for profile in cpu tensorrt; do
  if ard-edge calibrate --onnx "$out/fp32.onnx" --data "$data" --profile "$profile" \
      --out "$out/$profile.int8.onnx" --max-auroc-drop 0.005 ${ranges[@]+"${ranges[@]}"}; then
    engines+=(--engine "$out/$profile.int8.onnx")
    ranges=(--ranges "$out/cpu.int8.onnx.ranges.json")
  else
    status=1
  fi
done
ard-edge bench "${engines[@]}" --batch 1,8 --iterations 20 --warmup 3 --repeat 3 --threads "${THREADS:-1}" \
  --json "$out/bench.json" --markdown "$out/bench.md"
exit "$status"
