"""Results to the factory, with the real things: mosquitto, an asyncua client, a local HTTP server.

The decision schema (docs/decision.schema.json) is checked against what the decision log,
MQTT and the webhook really emit; store and forward is checked by stopping the broker mid-run.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
import yaml

from _models import exported_onnx
from _waiting import wait_for as _wait_for
from _mosquitto import MOSQUITTO, Broker, Subscriber, free_port
from ard_edge._io import sha256_file
from ard_edge.camera import FolderReplay
from ard_edge.config import from_dict
from ard_edge.engines import open_engine
from ard_edge.errors import ConfigError
from ard_edge.runtime import AppConfig, DecisionLog, EvidenceSaver, Pipeline, RuntimeConfig
from ard_edge.runtime.outputs import context_of, output_sinks
from ard_edge.runtime.outputs_config import MqttConfig, QueueConfig, WebhookConfig
from ard_edge.runtime.sinks.mqtt import MqttSink
from ard_edge.runtime.sinks.outbox import DiskQueue
from ard_edge.runtime.sinks.webhook import WebhookSink

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "docs" / "decision.schema.json").read_text())
ARD_EDGE = Path(sys.executable).parent / "ard-edge"
TLSIMU = Path(os.environ.get("ARD_EDGE_TLSIMU", Path.home() / ".cache/ard-edge/genicam-1.5.0/TLSimu.cti"))
needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt-get install mosquitto)")


def validate(decision: dict) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(decision)


def read_log(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "decisions.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return exported_onnx(tmp_path_factory)


@pytest.fixture(scope="module")
def replay(tmp_path_factory) -> Path:
    """Textures, two with a dark blot, and one unreadable file (an ERROR decision)."""
    folder = tmp_path_factory.mktemp("replay")
    rng = np.random.default_rng(0)
    for i in range(6):
        image = cv2.GaussianBlur(rng.integers(60, 200, (64, 64), dtype=np.uint8), (5, 5), 0)
        if i % 3 == 2:
            cv2.circle(image, (32, 32), 14, 0, -1)
        cv2.imwrite(str(folder / f"{i:02d}.png"), image)
    (folder / "06_corrupt.png").write_bytes(b"not a png")
    return folder


def app(**outputs) -> AppConfig:
    return from_dict(AppConfig, {"line": "line-3", "station": "st2", "outputs": outputs})


def run_replay(model: Path, replay: Path, out: Path, config: AppConfig, frames: int, fps: float | None = None,
               during=None, evidence: bool = False):
    """Stream ``replay`` (looped; unpaced, so nothing is dropped) through ``model`` into the log and the outputs."""
    with open_engine(model) as engine, FolderReplay(replay, name="cam0", fps=fps, loop=True) as source:
        context = context_of(config)
        sinks = [DecisionLog(out), *output_sinks(config, out, {"cam0": source})]
        if evidence:
            sinks.append(EvidenceSaver(out, min_free_disk_mb=0))
        pipeline = Pipeline(source, engine, RuntimeConfig(status_interval_s=0.2), sinks, max_frames=frames,
                            context=context)
        pipeline.start()
        if during is not None:
            during(pipeline)
        return pipeline.join(timeout_s=120)


# -- the schema --------------------------------------------------------------------------------


def test_the_decision_log_follows_the_schema_with_model_id_line_station_and_evidence(model, replay, tmp_path):
    summary = run_replay(model, replay, tmp_path, app(), frames=14, evidence=True)
    decisions = read_log(tmp_path)
    assert len(decisions) == 14 and summary.lost == 0
    for decision in decisions:
        validate(decision)
    first = decisions[0]
    assert first["schema"] == "ard-edge.decision/1"
    assert first["model_id"] == f"{model.name}@sha256:{sha256_file(model)}"
    assert (first["line"], first["station"], first["precision"]) == ("line-3", "st2", "fp32")
    verdicts = {d["verdict"] for d in decisions}
    assert "ERROR" in verdicts and len(verdicts) >= 2
    for decision in decisions:  # a FAIL names its evidence image; nothing else does
        if decision["verdict"] == "FAIL":
            assert (tmp_path / decision["evidence"]).is_file()
        else:
            assert decision["evidence"] is None
    broken = dict(first, verdict="MAYBE")
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(("outputs", "message"), [
    ({"mqtt": {"prot": 1883}}, r"outputs\.mqtt\.prot: unknown key \(did you mean port\?\)"),
    ({"mqtt": {"port": 70000}}, r"outputs\.mqtt\.port: must be 1-65535"),
    ({"mqt": {}}, r"outputs\.mqt: unknown key \(did you mean mqtt\?\)"),
    ({"webhook": {"url": "ftp://x"}}, r"outputs\.webhook\.url: must be an http"),
    ({"webhook": {"url": "http://127.0.0.1/x", "send": "some"}}, r"outputs\.webhook\.send: 'some' is not one of"),
    ({"opcua": {"endpoint": "opc.tcp://10.1.2.3:4840/"}}, r"outputs\.opcua\.security: none is allowed only on a loopback"),
    ({"opcua": {"endpoint": "opc.tcp://10.1.2.3:4840/", "security": "basic256sha256"}},
     r"outputs\.opcua\.certificate: basic256sha256 needs an existing file"),
    ({"mqtt": {"queue": {"max_decisions": 0}}}, r"outputs\.mqtt\.queue\.max_decisions: must be positive"),
])
def test_a_malformed_outputs_section_names_the_key(outputs, message):
    with pytest.raises(ConfigError, match=message):
        app(**outputs)


def test_a_bad_outputs_section_is_one_line_from_the_cli(model, tmp_path):
    config = tmp_path / "ard-edge.yaml"
    config.write_text(yaml.safe_dump({"outputs": {"mqtt": {"hots": "x"}}}))
    proc = subprocess.run([str(ARD_EDGE), "run", "--camera", "folder:.", "--engine", str(model), "--config",
                           str(config), "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {config}: outputs.mqtt.hots: unknown key (did you mean host?)"]


# -- store and forward -------------------------------------------------------------------------


def test_the_disk_queue_keeps_order_drops_the_oldest_and_survives_a_reopen(tmp_path):
    queue = DiskQueue(tmp_path / "q.sqlite", max_items=3)
    for i in range(5):
        queue.put(str(i))
    assert [body for _, body in queue.peek(10)] == ["2", "3", "4"] and queue.dropped == 2 and len(queue) == 3
    first_id = queue.peek(1)[0][0]
    queue.remove([first_id])
    queue.close()
    reopened = DiskQueue(tmp_path / "q.sqlite", max_items=3)
    assert [body for _, body in reopened.peek(10)] == ["3", "4"] and len(reopened) == 2
    reopened.close()


# -- MQTT --------------------------------------------------------------------------------------


@needs_mosquitto
def test_mqtt_delivers_every_decision_across_a_broker_restart(model, replay, tmp_path):
    broker = Broker(tmp_path / "broker").start()
    subscriber = Subscriber(broker.port, "ard-edge/#")
    config = app(mqtt={"port": broker.port, "stats_interval_s": 0.2})

    def restart_broker_mid_run(pipeline):
        _wait_for(lambda: pipeline.status().frames_captured >= 30)
        broker.stop()
        time.sleep(0.5)  # decisions go on, queued on disk
        broker.start()

    try:
        summary = run_replay(model, replay, tmp_path / "run", config, frames=240, during=restart_broker_mid_run)
        logged = read_log(tmp_path / "run")
        _wait_for(lambda: len({d["frame_id"] for d in subscriber.decisions()}) >= len(logged), fail=False)
        received = subscriber.decisions()
        statuses = subscriber.payloads("/status")
    finally:
        subscriber.close()
        broker.stop()
    assert len(logged) == 240 and summary.dropped == 0 and summary.lost == 0
    assert {(d["run_id"], d["frame_id"]) for d in received} == {(d["run_id"], d["frame_id"]) for d in logged}
    for decision in received:
        validate(decision)
    assert summary.sink_stats["mqtt_delivered"] >= len(logged) and summary.sink_stats["mqtt_queued"] == 0
    assert summary.sink_stats["mqtt_dropped"] == 0
    assert statuses[0] == b"online" and statuses[-1] == b"offline"  # retained, and said again on a clean close
    assert all(topic == "ard-edge/st2/cam0/decision" for topic, _, _ in subscriber.messages
               if topic.endswith("/decision"))


@needs_mosquitto
def test_an_unreachable_broker_at_start_queues_and_says_so(model, replay, tmp_path, caplog):
    config = app(mqtt={"port": free_port(), "connect_timeout_s": 0.3, "queue": {"drain_s": 0.2}})
    summary = run_replay(model, replay, tmp_path, config, frames=10)
    assert summary.lost == 0 and summary.sink_stats["mqtt_delivered"] == 0
    assert summary.sink_stats["mqtt_queued"] == 10
    assert any("is not reachable yet" in r.getMessage() for r in caplog.records)
    # The next run finds them and delivers them first, in order.
    broker = Broker(tmp_path / "broker").start()
    subscriber = Subscriber(broker.port, "ard-edge/#")
    try:
        sink = MqttSink(MqttConfig(port=broker.port), tmp_path, "st2")
        sink.on_start(None)
        _wait_for(lambda: len(subscriber.decisions()) >= 10)
        sink.on_status(_status(sink.stats()))  # the periodic stats carry the live status and the counters
        _wait_for(lambda: subscriber.payloads("/cam0/stats"))
        sink.close()
        stats = json.loads(subscriber.payloads("/cam0/stats")[-1])
        received = [d["frame_id"] for d in subscriber.decisions()]
    finally:
        subscriber.close()
        broker.stop()
    assert received == [d["frame_id"] for d in read_log(tmp_path)]
    assert stats["camera"] == "cam0" and stats["sink_stats"]["mqtt_delivered"] > 0


def _status(sinks: dict[str, int]):
    from ard_edge.runtime.summary import LiveStatus

    return LiveStatus("cam0", 1.0, 10, {"PASS": 10, "FAIL": 0, "ERROR": 0}, 0, 10.0, 2.0, 3.0, 0,
                      sink_stats=sinks)


@needs_mosquitto
def _self_signed_localhost(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), PEM: what a broker on a test host would show."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "broker.pem", folder / "broker.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@needs_mosquitto
def test_mqtt_over_tls_verifies_the_broker_and_delivers(model, replay, tmp_path):
    cert, key = _self_signed_localhost(tmp_path / "tls")
    broker = Broker(tmp_path / "broker", tls=(cert, key)).start()
    try:
        trusted = run_replay(model, replay, tmp_path / "trusted", app(mqtt={"port": broker.port, "tls": True,
                                                                            "ca_file": str(cert)}), frames=12)
        # The system CAs do not know this broker: nothing is delivered, everything waits on disk.
        untrusted = run_replay(model, replay, tmp_path / "untrusted",
                               app(mqtt={"port": broker.port, "tls": True, "connect_timeout_s": 1.0}), frames=4)
    finally:
        broker.stop()
    assert trusted.lost == 0 and trusted.sink_stats["mqtt_delivered"] == 12 and trusted.sink_stats["mqtt_queued"] == 0
    assert untrusted.lost == 0 and untrusted.sink_stats["mqtt_delivered"] == 0 and untrusted.sink_stats["mqtt_queued"] == 4


def test_wrong_mqtt_credentials_are_one_line_naming_the_sink(model, replay, tmp_path):
    broker = Broker(tmp_path / "broker", users={"line": "right"}).start()
    config = tmp_path / "ard-edge.yaml"
    config.write_text(yaml.safe_dump({"outputs": {"mqtt": {"port": broker.port}}}))
    env = dict(os.environ, ARD_EDGE_MQTT_USERNAME="line", ARD_EDGE_MQTT_PASSWORD="wrong")
    try:
        proc = subprocess.run([str(ARD_EDGE), "run", "--camera", f"folder:{replay}", "--engine", str(model),
                               "--config", str(config), "--out", str(tmp_path / "out"), "--max-frames", "1"],
                              capture_output=True, text=True, timeout=60, env=env)
    finally:
        broker.stop()
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(errors) == 1 and errors[0].startswith(f"error: outputs.mqtt: mqtt broker 127.0.0.1:{broker.port}"
                                                     " refused the login")
    assert "ARD_EDGE_MQTT_PASSWORD" in errors[0]


# -- webhook -----------------------------------------------------------------------------------


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 500 to the first two POSTs, then 200; keeps what it accepted."""

    attempts = 0
    accepted: list[dict] = []
    headers_seen: list[str | None] = []

    def do_POST(self):  # noqa: N802 - the http.server hook name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).attempts += 1
        type(self).headers_seen.append(self.headers.get("Authorization"))
        code = 500 if type(self).attempts <= 2 else 200
        if code == 200:
            type(self).accepted.append(json.loads(body))
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_webhook_answering_500_twice_gets_the_decision_once(tmp_path, monkeypatch):
    monkeypatch.setenv("ARD_EDGE_WEBHOOK_TOKEN", "s3cret")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    decisions = [_decision(1, "PASS"), _decision(2, "FAIL"), _decision(3, "FAIL")]
    sink = WebhookSink(WebhookConfig(url=url, backoff_initial_s=0.01, queue=QueueConfig(100)), tmp_path)
    try:
        sink.on_start(None)
        for decision in decisions:
            sink.on_decision(decision, None, None)
        _wait_for(lambda: len(_Flaky.accepted) == 2)
        sink.close()
    finally:
        server.shutdown()
    assert [d["frame_id"] for d in _Flaky.accepted] == [2, 3]  # rejects only (send: reject), once each, in order
    assert _Flaky.attempts == 4 and set(_Flaky.headers_seen) == {"Bearer s3cret"}
    assert sink.snapshot() == {"delivered": 2, "queued": 0, "dropped": 0, "errors": 2}
    for decision in _Flaky.accepted:
        validate(decision)


def _decision(frame_id: int, verdict: str):
    from ard_edge.runtime.decision import Decision

    return Decision(frame_id=frame_id, camera="cam0", timestamp=0, received="2026-12-01T10:00:00.000Z", score=1.0,
                    normalized_score=0.6, verdict=verdict, latency_ms=3.0, engine="onnxruntime:fp32:m.onnx",
                    reject=verdict == "FAIL", engine_ms=2.0, run_id="r1",
                    model_id="m.onnx@sha256:" + "0" * 64, precision="fp32",
                    station="st2")


# -- OPC UA ------------------------------------------------------------------------------------


@pytest.mark.skipif(not TLSIMU.is_file(), reason=f"{TLSIMU} missing: run `python scripts/fetch_tlsimu.py`")
def test_the_opcua_handshake_gives_one_result_per_trigger_matching_the_log(model, tmp_path):
    """`ard-edge run` hosts the server; a real client drives Trigger/Busy/ResultReady/ResultAck 100 times."""
    port = free_port()
    endpoint = f"opc.tcp://127.0.0.1:{port}/ard-edge/"
    config = tmp_path / "ard-edge.yaml"
    config.write_text(yaml.safe_dump({
        "station": "st2",
        "cameras": {"line1": {"producer": str(TLSIMU), "serial": "SN_InterfaceA_0", "width": 64, "height": 48,
                              "trigger": "software"}},
        "outputs": {"opcua": {"endpoint": endpoint}},
    }))
    out = tmp_path / "out"
    run = subprocess.Popen([str(ARD_EDGE), "run", "--camera", "line1", "--engine", str(model), "--config",
                            str(config), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        results, refused = asyncio.run(_drive_handshake(endpoint, cycles=100))
    finally:
        run.send_signal(signal.SIGINT)
        stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
    logged = {d["frame_id"]: d for d in read_log(out)}
    assert len(results) == 100 and len(logged) == 100  # exactly one frame, one decision, one result per trigger
    assert [r["frame_id"] for r in results] == sorted(logged)
    for result in results:
        assert result["verdict"] == logged[result["frame_id"]]["verdict"]
    assert refused == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sink_stats"]["opcua_triggers"] == 100 and summary["sink_stats"]["opcua_triggers_refused"] == 1


async def _drive_handshake(endpoint: str, cycles: int) -> tuple[list[dict], int]:
    from asyncua import Client, ua

    client = Client(endpoint)
    deadline = time.monotonic() + 60
    while True:  # the run starts the server once the engine and the camera are ready
        try:
            await client.connect()
            break
        except (OSError, asyncio.TimeoutError, ua.UaError):
            assert time.monotonic() < deadline, "the OPC UA server never came up"
            await asyncio.sleep(0.2)
    try:
        ns = await client.get_namespace_index("urn:ard-edge")

        def node(name):
            return client.get_node(ua.NodeId(f"line1.{name}", ns))

        async def until(name, value):
            limit = time.monotonic() + 10
            while await node(name).read_value() != value:
                assert time.monotonic() < limit, f"{name} never became {value}"
                await asyncio.sleep(0.002)

        await until("Ready", True)
        assert (await node("ModelId").read_value()) == ""  # until the first decision names its model
        results = []
        for cycle in range(cycles):
            await node("Trigger").write_value(True)
            if cycle == 3:  # a second trigger before the ack: refused and counted, never silent
                await until("ResultReady", True)
                await node("Trigger").write_value(True)
                await until("TriggerRefused", True)
            await until("ResultReady", True)
            assert await node("Busy").read_value() is False
            results.append({"frame_id": await node("ResultFrameId").read_value(),
                            "verdict": await node("ResultVerdict").read_value()})
            await node("ResultAck").write_value(True)
            await until("ResultReady", False)
        assert await node("LastFrameId").read_value() == results[-1]["frame_id"]
        return results, await node("TriggersRefused").read_value()
    finally:
        await client.disconnect()


def test_opcua_with_basic256sha256_refuses_plain_clients_and_admits_the_login(tmp_path, monkeypatch):
    """A self-signed server certificate, a client certificate, and a user from the environment."""
    from types import SimpleNamespace

    from asyncua import Client, ua
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from ard_edge.runtime.outputs_config import OpcUaConfig
    from ard_edge.runtime.sinks.opcua import OpcUaSink

    async def certificates():
        for who, use in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
            await setup_self_signed_certificate(tmp_path / f"{who}.pem", tmp_path / f"{who}.der", f"urn:ard-edge:{who}",
                                                "localhost", [use], {"commonName": f"ard-edge test {who}"})

    asyncio.run(certificates())
    monkeypatch.setenv("ARD_EDGE_OPCUA_USERNAME", "plc")
    monkeypatch.setenv("ARD_EDGE_OPCUA_PASSWORD", "right")
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/ard-edge/"
    config = from_dict(OpcUaConfig, {"endpoint": endpoint, "security": "basic256sha256",
                                     "certificate": str(tmp_path / "server.der"),
                                     "private_key": str(tmp_path / "server.pem")})

    async def connect(secure: bool, password: str) -> bool:
        client = Client(endpoint, timeout=5)
        client.set_user("plc")
        client.set_password(password)
        if secure:
            await client.set_security_string(f"Basic256Sha256,SignAndEncrypt,{tmp_path / 'client.der'},"
                                             f"{tmp_path / 'client.pem'}")
        try:
            await client.connect()
        except Exception:  # noqa: BLE001 - any refusal will do
            return False
        try:
            ns = await client.get_namespace_index("urn:ard-edge")
            return await client.get_node(ua.NodeId("cam0.Ready", ns)).read_value() is True
        finally:
            await client.disconnect()

    sink = OpcUaSink(config)
    sink.on_start(SimpleNamespace(camera="cam0"))
    try:
        _wait_for(lambda: asyncio.run(connect(True, "right")), timeout_s=20)
        assert asyncio.run(connect(False, "right")) is False  # no plain endpoint
        assert asyncio.run(connect(True, "wrong")) is False
    finally:
        sink.close()


def test_a_trigger_without_a_decision_is_an_error_result_and_one_while_busy_is_refused(tmp_path):
    """Fail safe: silence from the camera becomes an ERROR result with ResultReject, never no answer."""
    from types import SimpleNamespace

    from asyncua import Client, ua

    from ard_edge.runtime.outputs_config import OpcUaConfig
    from ard_edge.runtime.sinks.opcua import OpcUaSink

    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/ard-edge/"
    sink = OpcUaSink(OpcUaConfig(endpoint=endpoint, result_timeout_s=0.5))
    sink.on_start(SimpleNamespace(camera="cam0"))

    async def plc() -> dict:
        async with Client(endpoint) as client:
            ns = await client.get_namespace_index("urn:ard-edge")
            node = {n: client.get_node(ua.NodeId(f"cam0.{n}", ns)) for n in VARIABLE_NAMES}
            await node["Trigger"].write_value(True)
            busy = await node["Busy"].read_value()
            await node["Trigger"].write_value(True)  # while Busy: refused
            while not await node["ResultReady"].read_value():
                await asyncio.sleep(0.01)
            return {"busy": busy, **{n: await node[n].read_value() for n in
                                     ("ResultVerdict", "ResultReject", "Busy", "TriggersRefused", "TriggerCount")}}

    try:
        seen = asyncio.run(plc())
    finally:
        sink.close()
    assert seen == {"busy": True, "ResultVerdict": "ERROR", "ResultReject": True, "Busy": False,
                    "TriggersRefused": 1, "TriggerCount": 1}
    assert sink.stats() == {"opcua_triggers": 1, "opcua_triggers_refused": 1, "opcua_result_timeouts": 1}


VARIABLE_NAMES = ("Trigger", "Busy", "ResultReady", "ResultVerdict", "ResultReject", "TriggersRefused", "TriggerCount")
