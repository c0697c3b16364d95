#!/usr/bin/env bash
# The main job end to end on embedded defaults: synthetic inspection images -> train -> eval ->
# fused ONNX -> engine (TensorRT on an NVIDIA GPU, ONNX Runtime elsewhere) -> predict ->
# the test set streamed through the replay camera (PASS and FAIL) -> the simulated GenICam
# camera: capture good frames from it, fit a model on them, stream it to decisions.
# usage: scripts/demo.sh [DEMO_DIR]    (everything is written under DEMO_DIR, default: demo)
set -euo pipefail
DEMO="${1:-demo}"
STEP=0  # steps number themselves: add one anywhere with `step "what it does"`
step() { STEP=$((STEP + 1)); printf '\n== %d. %s\n' "$STEP" "$*"; }

step "synthetic dataset (brick texture; local and global defects)"
ard-edge synth "$DEMO/data" --num-train 120 --num-test 40 --image-size 128 --seed 0 --overwrite

step "fit the default model on the good images (EfficientNet-Lite2 teacher: memory bank and global Gaussian, no student)"
ard-edge train --data "$DEMO/data" --out "$DEMO/run" --image-size 128 --epochs 15 --batch-size 16 --seed 0

step "evaluate: image AUROC, pixel AUROC, PRO per defect type"
ard-edge eval --model "$DEMO/run/model.ckpt" --data "$DEMO/data" --out "$DEMO/report.json"

step "export one fused ONNX graph (uint8 mono frames in, map/score/decision out)"
ard-edge export --model "$DEMO/run/model.ckpt" --out "$DEMO/export/demo.onnx" --channels 1 --batch dynamic

step "build an INT8 engine for this machine (TensorRT with an NVIDIA GPU, else OpenVINO where installed, else ONNX Runtime) behind the accuracy gate"
# Exit status 3 is the gate refusing INT8 for this model: an FP32 engine is the honest fallback.
status=0
ard-edge build-engine --onnx "$DEMO/export/demo.onnx" --precision int8 --calibration-data "$DEMO/data" \
  --batch 1:4:8 --out "$DEMO/engines/demo.engine" || status=$?
if [[ $status -eq 3 ]]; then
  echo "the accuracy gate refused INT8 for this model: building FP32 instead"
  ard-edge build-engine --onnx "$DEMO/export/demo.onnx" --precision fp32 --batch 1:4:8 --out "$DEMO/engines/demo.engine"
elif [[ $status -ne 0 ]]; then
  exit "$status"
fi

step "predict on the test images with the built engine"
ard-edge predict --engine "$DEMO/engines/demo.engine" "$DEMO/data/test" --out "$DEMO/predictions"

# -- live page (docs/live.md): each camera step serves it and prints its URL. ARD_EDGE_DEMO_HTTP picks the
# address (default: a free local port); ARD_EDGE_DEMO_KEEP_SERVING=1 keeps the replay step's page (PASS and
# FAIL parts) up after its frames, until Ctrl-C, and the demo goes on after that.
LIVE=(--http "${ARD_EDGE_DEMO_HTTP:-127.0.0.1:0}")
KEEP=()
if [ -n "${ARD_EDGE_DEMO_KEEP_SERVING:-}" ]; then KEEP=(--keep-serving); fi
# -- end live page

# The replay camera stands in for the line camera: the test set, good parts and defects mixed,
# one folder (links named <type>_<file>, so each decision's `source` names its defect type).
step "stream the test set through the replay camera at a line rate of 20 parts/s: good parts PASS, defects FAIL"
rm -rf "$DEMO/line_camera" && mkdir -p "$DEMO/line_camera"
for image in "$DEMO"/data/test/*/*.png; do
  kind=$(basename "$(dirname "$image")")
  ln -s "$(realpath "$image")" "$DEMO/line_camera/${kind}_$(basename "$image")"
done
ard-edge run --camera "folder:$DEMO/line_camera" --fps 20 --engine "$DEMO/engines/demo.engine" \
  --batch 4 --out "$DEMO/line" "${LIVE[@]}" "${KEEP[@]}"
echo "heatmaps of the FAIL parts: $DEMO/line/fail/"

# cam0 in examples/ard-edge.yaml says `simulator: true`: the simulator is never a silent fallback.
# Its test pattern (a black square moving on white) is not brick, so it gets a model of its own:
# capture good frames from it, fit the default model on them, and stream it. The square moves a
# pixel a frame from the same corner each time the camera starts, so 150 images 20 ms apart
# (frames 1-300) cover every position the 200-frame run below sees.
step "capture 150 good frames from the simulated GenICam camera (viky.cti, 640x480 Mono8)"
rm -rf "$DEMO/viky"  # capture refuses a folder that already holds images
ard-edge capture --camera cam0 --config examples/ard-edge.yaml --out "$DEMO/viky/train/good" \
  --frames 150 --every-ms 20

step "fit, export and build an engine for the simulated camera"
ard-edge train --data "$DEMO/viky" --out "$DEMO/viky/run" --image-size 128 --seed 0
ard-edge export --model "$DEMO/viky/run/model.ckpt" --out "$DEMO/viky/export/viky.onnx" --channels 1 --batch dynamic
ard-edge build-engine --onnx "$DEMO/viky/export/viky.onnx" --precision fp32 --batch 1:4:8 \
  --out "$DEMO/viky/engines/viky.engine"

step "stream the simulated camera through its own model: its frames PASS"
ard-edge run --camera cam0 --config examples/ard-edge.yaml --engine "$DEMO/viky/engines/viky.engine" \
  --max-frames 200 --batch 4 --out "$DEMO/viky/line" "${LIVE[@]}"

bash scripts/demo_mqtt.sh "$DEMO"  # issue 15: MQTT output to a local mosquitto, when one is installed

printf '\nDone. Everything is under %s/ (decisions: %s/line/decisions.jsonl, evidence: %s/line/fail/).\n' "$DEMO" "$DEMO" "$DEMO"
