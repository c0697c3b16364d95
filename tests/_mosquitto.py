"""A real mosquitto broker on 127.0.0.1 and a real subscriber, for the MQTT tests and benchmarks."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").is_file() else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Broker:
    """mosquitto on a free local port; ``stop()``/``start()`` restart it on the same port.

    Persistence is on so a subscriber's session (and the QoS 1 messages queued for it) survives
    a restart, as on a production broker.
    """

    def __init__(self, folder: Path, users: dict[str, str] | None = None, tls: tuple[Path, Path] | None = None):
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} 127.0.0.1", "persistence true", f"persistence_location {folder}/",
                 "max_queued_messages 0", "max_inflight_messages 0", "user root"]
        if tls:  # (certificate, key); self-signed, so the certificate is its own CA file
            lines += [f"cafile {tls[0]}", f"certfile {tls[0]}", f"keyfile {tls[1]}"]
        if users:
            password_file = folder / "passwords"
            for index, (user, password) in enumerate(users.items()):
                flags = ["-b"] if index else ["-c", "-b"]
                subprocess.run(["mosquitto_passwd", *flags, str(password_file), user, password], check=True)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        self.config = folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> Broker:
        with (self.folder / "log").open("ab") as log:
            self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {(self.folder / 'log').read_text()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # SIGTERM: mosquitto saves its sessions before exiting
            self.process.wait(10)
            self.process = None


class Subscriber:
    """A paho client with a persistent session collecting every message under ``topic``."""

    def __init__(self, port: int, topic: str, client_id: str = "test-subscriber"):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "the subscriber could not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload, message.retain))

    def decisions(self) -> list[dict]:
        with self._lock:
            return [json.loads(payload) for topic, payload, _ in self.messages if topic.endswith("/decision")]

    def payloads(self, suffix: str) -> list[bytes]:
        with self._lock:
            return [payload for topic, payload, _ in self.messages if topic.endswith(suffix)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
