"""The ``outputs:`` section of ard-edge.yaml: where decisions go besides the decision log.

Secrets never live in the YAML: each sink names the environment variables that hold them
(``password_env: ARD_EDGE_MQTT_PASSWORD``), and :func:`secret` reads them at start.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import urllib.parse
from pathlib import Path
from typing import Literal

from ard_edge.config import check
from ard_edge.errors import ConfigError


def _key(path: str, default: str, name: str) -> str:
    return f"{path or default}.{name}"


def _check_positive(obj, path: str, default: str, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        check(value > 0, _key(path, default, name), f"must be positive, got {value}")


@dataclasses.dataclass(frozen=True)
class QueueConfig:
    """The store-and-forward queue every network sink keeps on disk."""

    max_decisions: int = 100_000  # beyond this many undelivered decisions the oldest are dropped (counted)
    drain_s: float = 5.0  # at the end of a run, how long to go on delivering; the rest waits on disk for the next

    def validate(self, path: str = "") -> None:
        _check_positive(self, path, "queue", "max_decisions")
        check(self.drain_s >= 0, f"{path or 'queue'}.drain_s", f"must be 0 or more, got {self.drain_s}")


@dataclasses.dataclass(frozen=True)
class MqttConfig:
    """``outputs.mqtt``: decisions to ``<prefix>/<station>/<camera>/decision`` (QoS 1)."""

    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = "ard-edge"
    client_id: str = ""  # empty: ard-edge-<station>-<pid>
    tls: bool = False  # TLS to the broker; ca_file verifies it (system CAs when unset)
    ca_file: Path | None = None
    username_env: str = "ARD_EDGE_MQTT_USERNAME"  # environment variables holding the credentials
    password_env: str = "ARD_EDGE_MQTT_PASSWORD"
    keepalive_s: int = 30
    stats_interval_s: float = 10.0  # how often `<prefix>/<station>/<camera>/stats` is published
    connect_timeout_s: float = 3.0  # how long start waits for the broker before queueing instead
    queue: QueueConfig = dataclasses.field(default_factory=QueueConfig)

    def validate(self, path: str = "") -> None:
        check(bool(self.host), _key(path, "outputs.mqtt", "host"), "must name the broker")
        check(0 < self.port < 65536, _key(path, "outputs.mqtt", "port"), f"must be 1-65535, got {self.port}")
        check(bool(self.prefix) and not set(self.prefix) & set("#+"), _key(path, "outputs.mqtt", "prefix"),
              "must be a non-empty topic prefix without MQTT wildcards (# +)")
        _check_positive(self, path, "outputs.mqtt", "keepalive_s", "stats_interval_s", "connect_timeout_s")


@dataclasses.dataclass(frozen=True)
class WebhookConfig:
    """``outputs.webhook``: POST each FAIL (or every) decision as JSON."""

    url: str = ""
    # reject: FAIL and rejected ERRORs (fail safe: an ERROR is an alarm too); fail: FAIL only; all: every decision
    send: Literal["reject", "fail", "all"] = "reject"
    timeout_s: float = 2.0
    backoff_initial_s: float = 0.2  # retry delay after a timeout or 5xx, doubled up to backoff_max_s
    backoff_max_s: float = 10.0
    token_env: str = "ARD_EDGE_WEBHOOK_TOKEN"  # when set in the environment: `Authorization: Bearer <token>`
    queue: QueueConfig = dataclasses.field(default_factory=QueueConfig)

    def validate(self, path: str = "") -> None:
        parsed = urllib.parse.urlparse(self.url)
        check(parsed.scheme in ("http", "https") and bool(parsed.netloc), _key(path, "outputs.webhook", "url"),
              f"must be an http:// or https:// URL, got {self.url!r}")
        _check_positive(self, path, "outputs.webhook", "timeout_s", "backoff_initial_s", "backoff_max_s")


@dataclasses.dataclass(frozen=True)
class OpcUaConfig:
    """``outputs.opcua``: an OPC UA server inside ``ard-edge run`` with a PLC handshake per camera."""

    endpoint: str = "opc.tcp://127.0.0.1:4840/ard-edge/"
    security: Literal["none", "basic256sha256"] = "none"  # none only on a loopback endpoint
    certificate: Path | None = None  # the server's certificate (DER or PEM) and private key, for basic256sha256
    private_key: Path | None = None
    username_env: str = "ARD_EDGE_OPCUA_USERNAME"  # when both are set, clients must log in with them
    password_env: str = "ARD_EDGE_OPCUA_PASSWORD"
    namespace: str = "urn:ard-edge"
    result_timeout_s: float = 5.0  # a trigger with no decision by then is answered with an ERROR result

    def validate(self, path: str = "") -> None:
        key = _key(path, "outputs.opcua", "endpoint")
        parsed = urllib.parse.urlparse(self.endpoint)
        check(parsed.scheme == "opc.tcp" and bool(parsed.hostname), key,
              f"must look like opc.tcp://HOST:PORT/PATH, got {self.endpoint!r}")
        if self.security == "none":
            check(_is_loopback(parsed.hostname), _key(path, "outputs.opcua", "security"),
                  f"none is allowed only on a loopback endpoint ({parsed.hostname} is not):"
                  " use basic256sha256 with certificate and private_key")
        else:
            for name in ("certificate", "private_key"):
                value = getattr(self, name)
                check(value is not None and value.is_file(), _key(path, "outputs.opcua", name),
                      f"basic256sha256 needs an existing file, got {value}")
        _check_positive(self, path, "outputs.opcua", "result_timeout_s")


@dataclasses.dataclass(frozen=True)
class OutputsConfig:
    """``outputs:``; a sink is on when its section is present."""

    mqtt: MqttConfig | None = None
    webhook: WebhookConfig | None = None
    opcua: OpcUaConfig | None = None


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def secret(variable: str) -> str | None:
    """The value of environment variable ``variable``; None when unset or empty."""
    return os.environ.get(variable) or None


def credentials(username_env: str, password_env: str, sink: str) -> tuple[str | None, str | None]:
    """(user, password) from the environment; a password without a user is a mistake worth naming."""
    user, password = secret(username_env), secret(password_env)
    if password and not user:
        raise ConfigError(f"{sink}: {password_env} is set but {username_env} is not: set both or neither")
    return user, password
