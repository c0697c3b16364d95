#!/usr/bin/env bash
# The demo's MQTT step (docs/outputs.md): when mosquitto is installed, start one on a free local
# port, stream the test set through the replay camera with `outputs.mqtt` on, and show decisions
# (PASS and FAIL) arriving.
# usage: scripts/demo_mqtt.sh DEMO_DIR   (needs DEMO_DIR/engines/demo.engine and DEMO_DIR/line_camera from scripts/demo.sh)
set -euo pipefail
DEMO="${1:-demo}"
MOSQUITTO="$(command -v mosquitto || { test -x /usr/sbin/mosquitto && echo /usr/sbin/mosquitto; } || true)"
printf '\n== MQTT: decisions to a local broker (ard-edge/<station>/<camera>/decision, QoS 1)\n'
if [[ -z "$MOSQUITTO" ]]; then
  echo "mosquitto is not installed: skipping (apt-get install mosquitto mosquitto-clients to see this step)"
  exit 0
fi
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
WORK="$DEMO/mqtt"
mkdir -p "$WORK"
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$PORT" > "$WORK/mosquitto.conf"
"$MOSQUITTO" -c "$WORK/mosquitto.conf" > "$WORK/mosquitto.log" 2>&1 &
BROKER=$!
SUB=""
trap 'kill $BROKER ${SUB:+$SUB} 2>/dev/null || true' EXIT
sleep 0.5
# The replay camera with MQTT on: the example config plus a station name and an outputs: section.
{ cat examples/ard-edge.yaml; printf '\nstation: demo\noutputs:\n  mqtt:\n    port: %s\n' "$PORT"; } > "$WORK/ard-edge.yaml"
if command -v mosquitto_sub > /dev/null; then
  mosquitto_sub -p "$PORT" -t 'ard-edge/demo/+/decision' -C 3 > "$WORK/received.txt" &
  SUB=$!
  sleep 0.3
fi
ard-edge run --camera "folder:$DEMO/line_camera" --fps 20 --config "$WORK/ard-edge.yaml" \
  --engine "$DEMO/engines/demo.engine" --batch 4 --out "$WORK/line"
if [[ -n "$SUB" ]]; then
  wait "$SUB" || true
  SUB=""
  echo "the first decisions mosquitto_sub received on ard-edge/demo/+/decision (cut to 160 characters):"
  cut -c1-160 "$WORK/received.txt"
else
  echo "install mosquitto-clients to see the decisions arrive here (mosquitto_sub)"
fi
echo "watch a line's decisions yourself: mosquitto_sub -h BROKER -p PORT -t 'ard-edge/+/+/decision' -v"
echo "(and the retained status: mosquitto_sub -h BROKER -p PORT -t 'ard-edge/+/status' -v)"
