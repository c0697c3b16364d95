"""The sinks ``outputs:`` in ard-edge.yaml turns on, built for one run folder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ard_edge.runtime.config import AppConfig
from ard_edge.runtime.decision import DecisionContext
from ard_edge.runtime.sinks.base import Sink


def context_of(app: AppConfig) -> DecisionContext:
    """Line and station for every decision of a run."""
    return DecisionContext(line=app.line or None, station=app.station)


def output_sinks(app: AppConfig, out_dir: str | Path, sources: Mapping[str, Any]) -> list[Sink]:
    """The MQTT, webhook and OPC UA sinks the config asks for (none by default), one each for all cameras.

    Args:
        app: the whole config (``outputs:``, ``station:``).
        out_dir: the run folder; network sinks keep their queues under ``outbox/``.
        sources: camera alias -> its source, for the OPC UA ``Trigger``.
    """
    outputs = app.outputs
    sinks: list[Sink] = []
    if outputs.mqtt is not None:
        from ard_edge.runtime.sinks.mqtt import MqttSink

        sinks.append(MqttSink(outputs.mqtt, out_dir, app.station))
    if outputs.webhook is not None:
        from ard_edge.runtime.sinks.webhook import WebhookSink

        sinks.append(WebhookSink(outputs.webhook, out_dir))
    if outputs.opcua is not None:
        from ard_edge.runtime.sinks.opcua import OpcUaSink

        sinks.append(OpcUaSink(outputs.opcua, sources))
    return sinks
