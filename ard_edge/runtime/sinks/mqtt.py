"""MQTT output (paho-mqtt 2.x): every decision to ``<prefix>/<station>/<camera>/decision`` at QoS 1.

Also a retained ``<prefix>/<station>/status`` (``online``; the broker's last will says ``offline``
when this process vanishes) and, per camera, ``<prefix>/<station>/<camera>/stats`` every
``stats_interval_s``. A decision leaves the on-disk queue only when the broker has acknowledged
it (PUBACK), so a broker restart loses nothing; QoS 1 may deliver one twice, and each carries
``run_id`` + ``camera`` + ``frame_id`` to tell.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from ard_edge._io import json_safe
from ard_edge.errors import MissingDependency, OutputError
from ard_edge.runtime.outputs_config import MqttConfig, credentials
from ard_edge.runtime.sinks.outbox import ForwardingSink

log = logging.getLogger(__name__)

WINDOW = 100  # decisions published and not yet acknowledged; paho resends them after a reconnect
_INSTANCES = itertools.count()
_AUTH_FAILURES = (134, 135)  # CONNACK: bad user name or password, not authorized (MQTT 3.1.1 codes 4, 5)


def topic_part(name: str) -> str:
    """``name`` safe as one MQTT topic level (a replay's ``folder:a/b`` becomes ``folder_a_b``)."""
    return re.sub(r"[/#+\s]+", "_", name).strip("_") or "_"


class MqttSink(ForwardingSink):
    """Publish decisions to an MQTT broker from the sink's own thread and queue.

    Args:
        config: the ``outputs.mqtt`` section.
        out_dir: the run folder (the queue lives under ``outbox/``).
        station: the station name from ard-edge.yaml, a topic level.
        reconnect_min_s: first reconnect delay; it doubles up to ``reconnect_max_s``.
    """

    def __init__(self, config: MqttConfig, out_dir: str | Path, station: str, reconnect_min_s: float = 1.0,
                 reconnect_max_s: float = 30.0):
        super().__init__("mqtt", out_dir, config.queue.max_decisions, config.queue.drain_s)
        self.config = config
        self.where = f"mqtt broker {config.host}:{config.port}"
        self.base = f"{config.prefix}/{topic_part(station)}"
        self.status_topic = f"{self.base}/status"
        self._user, self._password = credentials(config.username_env, config.password_env, "outputs.mqtt")
        self._reconnect = (reconnect_min_s, reconnect_max_s)
        self._connected = threading.Event()
        self._answered = threading.Event()  # the first CONNACK (or a refusal) came
        self._refused: str | None = None
        self._client = None
        self._last_stats_s: dict[str, float] = {}

    # -- Sink

    def on_start(self, run) -> None:
        if self._client is None:
            self._client = self._connect()
        super().on_start(run)

    def on_status(self, status) -> None:
        now_s = time.monotonic()
        if now_s - self._last_stats_s.get(status.camera, -float("inf")) < self.config.stats_interval_s:
            return
        if self._connected.is_set():  # stats are a snapshot: not worth queueing while offline
            self._last_stats_s[status.camera] = now_s
            payload = json.dumps(json_safe(dataclasses.asdict(status)))  # sink_stats: every sink's counters
            self._client.publish(f"{self.base}/{topic_part(status.camera)}/stats", payload, qos=0)

    def close_connection(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if self._connected.is_set():
            client.publish(self.status_topic, "offline", qos=1, retain=True).wait_for_publish(1.0)
        client.disconnect()
        client.loop_stop()

    # -- connection

    def _connect(self):
        try:
            import paho.mqtt.client as mqtt
        except ImportError as exc:
            raise MissingDependency("outputs.mqtt needs paho-mqtt: pip install 'ard-edge[outputs]'") from exc
        # Unique per process and per sink: a broker disconnects the older of two clients with one id.
        default_id = f"ard-edge-{topic_part(self.base)}-{os.getpid()}-{next(_INSTANCES)}"
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.config.client_id or default_id)
        if self._user:
            client.username_pw_set(self._user, self._password)
        if self.config.tls:
            client.tls_set(ca_certs=str(self.config.ca_file) if self.config.ca_file else None)
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(*self._reconnect)
        client.max_inflight_messages_set(WINDOW)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = lambda *_: self.wake.set()
        client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        client.loop_start()  # paho's network thread; it reconnects with the backoff above
        if not self._answered.wait(self.config.connect_timeout_s):
            log.warning("%s is not reachable yet: the run goes on and decisions queue in %s until it answers",
                        self.where, self.queue.path)
        elif self._refused:
            client.loop_stop()
            raise OutputError(f"outputs.mqtt: {self.where} refused the login ({self._refused}): check"
                              f" {self.config.username_env} and {self.config.password_env}")
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            if reason_code in _AUTH_FAILURES:
                self._refused = str(reason_code)
            log.error("outputs.mqtt: %s refused the connection: %s", self.where, reason_code)
            self._answered.set()
            return
        client.publish(self.status_topic, "online", qos=1, retain=True)
        self._connected.set()
        self._answered.set()
        self.wake.set()
        log.info("outputs.mqtt: connected to %s", self.where)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set() and not self.stopping.is_set():
            log.warning("outputs.mqtt: lost %s (%s): decisions queue on disk until it is back", self.where,
                        reason_code)
        self._connected.clear()

    # -- delivery thread

    def deliver_loop(self) -> None:
        in_flight: dict[int, Any] = {}  # queue row id -> paho MQTTMessageInfo
        last_id = 0
        while True:
            self.wake.wait(0.5)
            self.wake.clear()
            last_id = self._settle(in_flight, last_id)
            idle = not in_flight and not self.queue.peek(1, last_id)
            if self.should_stop(idle):
                return
            if self._connected.is_set() and len(in_flight) < WINDOW:
                for row_id, body in self.queue.peek(WINDOW - len(in_flight), last_id):
                    topic = f"{self.base}/{topic_part(json.loads(body)['camera'])}/decision"
                    in_flight[row_id] = self._client.publish(topic, body, qos=1)
                    last_id = row_id

    def _settle(self, in_flight: dict[int, Any], last_id: int) -> int:
        """Remove acknowledged rows; forget publishes paho refused (they go again); return the new last id."""
        acked, failed = [], []
        for row_id, info in in_flight.items():
            try:
                if info.is_published():
                    acked.append(row_id)
            except (RuntimeError, ValueError):  # not queued by paho (disconnected at that instant)
                failed.append(row_id)
        for row_id in acked + failed:
            del in_flight[row_id]
        self.queue.remove(acked)
        self.counts["delivered"] += len(acked)
        if failed:
            self.counts["errors"] += len(failed)
            last_id = min(failed) - 1  # publish those again, in order, once connected
        return last_id
