#!/usr/bin/env bash
# The fused ONNX Runtime graph against PyTorch eager (TorchEngine) on the same checkpoint,
# batches 1 and 8, measured interleaved by `ard-edge bench` (docs/benchmarks.md).
# usage: benchmarks/onnx_vs_torch.sh CHECKPOINT [OUT_DIR]     (THREADS=N sets the threads, default 2)
set -euo pipefail
checkpoint="$1"
out="${2:-/tmp/ard-edge-onnx-vs-torch}"
mkdir -p "$out"
ard-edge export --model "$checkpoint" --out "$out/fp32.onnx" --channels 1 --batch dynamic
ard-edge bench --engine "$checkpoint" --engine "$out/fp32.onnx" --channels 1 --batch 1,8 \
  --iterations 20 --warmup 3 --repeat 3 --threads "${THREADS:-2}" \
  --json "$out/bench.json" --markdown "$out/bench.md"
