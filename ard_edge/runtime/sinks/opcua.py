"""OPC UA server (asyncua) inside ``ard-edge run``: per camera the last result, counters and a PLC handshake.

Each camera is an object ``<camera>`` in namespace ``urn:ard-edge`` whose variables have string
node ids ``<camera>.<Name>`` (see :data:`VARIABLES`). The handshake is the one PLCs use with
vision systems:

1. the PLC writes ``Trigger = True``; the server sets it back to False, raises ``Busy`` and,
   when the camera runs ``trigger: software``, fires the camera's software trigger;
2. the decision of the first frame the camera delivers after that trigger fills ``Result*``,
   then ``ResultReady`` goes True and ``Busy`` False (no decision within ``result_timeout_s``:
   an ERROR result, ``ResultReject`` True: fail safe);
3. the PLC reads the result and writes ``ResultAck = True``; the server clears ``ResultReady``
   and ``ResultAck``.

A trigger while Busy or while a result waits for its ack is refused, never dropped silently:
``TriggersRefused`` counts it, ``TriggerRefused`` goes True until the next accepted trigger.

The server runs its own thread and event loop; the pipeline's output thread only hands it
decisions with ``call_soon_threadsafe``, so OPC UA clients never slow the line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from ard_edge.errors import MissingDependency, OutputError
from ard_edge.runtime.decision import ERROR, FAIL, PASS
from ard_edge.runtime.outputs_config import OpcUaConfig, credentials
from ard_edge.runtime.sinks.base import Sink

log = logging.getLogger(__name__)

# name -> (initial value, OPC UA type, writable by clients)
VARIABLES: dict[str, tuple[Any, str, bool]] = {
    "Ready": (False, "Boolean", False),  # the camera's pipeline is running
    "ModelId": ("", "String", False),  # engine file name @ sha256 of it, from the latest decision
    "LastVerdict": ("", "String", False),  # PASS, FAIL or ERROR of the latest decision
    "LastScore": (float("nan"), "Double", False),  # NaN for ERROR
    "LastFrameId": (-1, "Int64", False),
    "LastTimestamp": ("", "String", False),  # host time of the frame, ISO 8601 UTC
    "LastReject": (False, "Boolean", False),
    "PassCount": (0, "UInt64", False),
    "FailCount": (0, "UInt64", False),
    "ErrorCount": (0, "UInt64", False),
    "Trigger": (False, "Boolean", True),
    "Busy": (False, "Boolean", False),
    "ResultReady": (False, "Boolean", False),
    "ResultAck": (False, "Boolean", True),
    "ResultVerdict": ("", "String", False),
    "ResultScore": (float("nan"), "Double", False),
    "ResultFrameId": (-1, "Int64", False),
    "ResultReject": (False, "Boolean", False),
    "TriggerCount": (0, "UInt64", False),  # triggers accepted
    "TriggersRefused": (0, "UInt64", False),  # triggers that came while Busy or before ResultAck
    "TriggerRefused": (False, "Boolean", False),  # the latest trigger was refused
}
_COUNTERS = {PASS: "PassCount", FAIL: "FailCount", ERROR: "ErrorCount"}


@dataclasses.dataclass
class _Handshake:
    """One camera's handshake state and counts (touched only on the server's event loop)."""

    trigger_ns: int | None = None  # monotonic time of the trigger waiting for its result
    result_ready: bool = False
    timeout: asyncio.TimerHandle | None = None
    verdicts: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(_COUNTERS, 0))


class OpcUaSink(Sink):
    """Host the OPC UA server for a run; one instance serves every camera (a MultiRun ``shared`` sink).

    Args:
        config: the ``outputs.opcua`` section.
        sources: camera alias -> its open :class:`~ard_edge.camera.FrameSource`, for ``Trigger``.
    """

    def __init__(self, config: OpcUaConfig, sources: Mapping[str, Any] | None = None):
        self.config = config
        self.sources = dict(sources or {})
        self._user = credentials(config.username_env, config.password_env, "outputs.opcua")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server = None
        self._ua = None
        self._ns = 0
        self._nodes: dict[str, dict[str, Any]] = {}  # camera -> name -> node id
        self._handshakes: dict[str, _Handshake] = {}
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._events: asyncio.Queue | None = None  # (handler, args) from other threads, run in order
        self.counts = {"opcua_triggers": 0, "opcua_triggers_refused": 0, "opcua_result_timeouts": 0}

    # -- Sink

    def on_start(self, run) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="ard-opcua", daemon=True)
            self._thread.start()
            self._started.wait()
            if self._start_error is not None:
                self._thread = None
                raise OutputError(f"outputs.opcua: cannot serve {self.config.endpoint}: {self._start_error}") \
                    from self._start_error
            log.info("outputs.opcua: serving %s (security %s)", self.config.endpoint, self.config.security)
        self._call(self._camera_ready, run.camera, True)

    def on_decision(self, decision, frame, result) -> None:
        received_ns = frame.received_ns if frame is not None else time.monotonic_ns()
        self._call(self._on_decision, decision, received_ns)

    def stats(self) -> dict[str, int]:
        return dict(self.counts)

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if thread.is_alive():  # else the server already stopped (and said why)
            self._loop.call_soon_threadsafe(self._events.put_nowait, None)  # after every queued decision
            thread.join(10.0)

    # -- server thread

    def _call(self, handler, *args) -> None:
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._events.put_nowait, (handler, args))

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to on_start, or logged once running
            if not self._started.is_set():
                self._start_error = exc
            else:
                log.exception("outputs.opcua: the server stopped")
        finally:
            self._started.set()
            self._loop.close()

    async def _main(self) -> None:
        server = await self._build_server()
        self._events = asyncio.Queue()
        async with server:
            for camera in self.sources:
                await self._camera(camera)
            self._started.set()
            while (event := await self._events.get()) is not None:
                handler, args = event
                try:
                    await handler(*args)
                except Exception:  # noqa: BLE001 - one bad update must not stop the server
                    log.exception("outputs.opcua: updating %s failed", args[0] if args else "?")
            for camera in list(self._nodes):
                await self._write(camera, Ready=False)

    async def _build_server(self):
        try:
            from asyncua import Server, ua
            from asyncua.common.callback import CallbackType
        except ImportError as exc:
            raise MissingDependency("outputs.opcua needs asyncua: pip install 'ard-edge[outputs]'") from exc
        self._ua = ua
        server = Server(user_manager=_UserManager(*self._user) if self._user[0] else None)
        await server.init()
        server.set_endpoint(self.config.endpoint)
        server.set_server_name("ard-edge")
        if self.config.security == "none":
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        else:
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            await server.load_certificate(str(self.config.certificate))
            await server.load_private_key(str(self.config.private_key))
        self._ns = await server.register_namespace(self.config.namespace)
        server.subscribe_server_callback(CallbackType.PostWrite, self._on_client_write)
        self._server = server
        return server

    async def _camera(self, camera: str) -> dict[str, Any]:
        """The camera's node ids, its object created on first use."""
        if camera in self._nodes:
            return self._nodes[camera]
        ua = self._ua
        folder = await self._server.nodes.objects.add_object(ua.NodeId(camera, self._ns), f"{self._ns}:{camera}")
        nodes = {}
        for name, (value, kind, writable) in VARIABLES.items():
            variant = ua.Variant(value, getattr(ua.VariantType, kind))
            node = await folder.add_variable(ua.NodeId(f"{camera}.{name}", self._ns), f"{self._ns}:{name}", variant)
            if writable:
                await node.set_writable()
            nodes[name] = node.nodeid
        self._nodes[camera] = nodes
        self._handshakes[camera] = _Handshake()
        return nodes

    async def _write(self, camera: str, **values) -> None:
        nodes = await self._camera(camera)
        ua = self._ua
        for name, value in values.items():
            kind = getattr(ua.VariantType, VARIABLES[name][1])
            await self._server.write_attribute_value(nodes[name], ua.DataValue(ua.Variant(value, kind)))

    async def _camera_ready(self, camera: str, ready: bool) -> None:
        await self._write(camera, Ready=ready)

    async def _on_decision(self, decision, received_ns: int) -> None:
        camera = decision.camera
        score = float("nan") if decision.score is None else decision.score
        await self._write(camera, LastVerdict=decision.verdict, LastScore=score, LastFrameId=decision.frame_id,
                          LastTimestamp=decision.received, LastReject=decision.reject, ModelId=decision.model_id)
        shake = self._handshakes[camera]
        shake.verdicts[decision.verdict] += 1
        await self._write(camera, **{_COUNTERS[decision.verdict]: shake.verdicts[decision.verdict]})
        if shake.trigger_ns is not None and received_ns >= shake.trigger_ns:
            await self._publish_result(camera, decision.verdict, score, decision.frame_id, decision.reject)

    async def _publish_result(self, camera: str, verdict: str, score: float, frame_id: int, reject: bool) -> None:
        shake = self._handshakes[camera]
        shake.trigger_ns = None
        if shake.timeout is not None:
            shake.timeout.cancel()
            shake.timeout = None
        shake.result_ready = True
        # The result before ResultReady: a PLC that sees ResultReady reads a complete result.
        await self._write(camera, ResultVerdict=verdict, ResultScore=score, ResultFrameId=frame_id,
                          ResultReject=reject)
        await self._write(camera, ResultReady=True)
        await self._write(camera, Busy=False)

    async def _on_client_write(self, event, _dispatcher) -> None:
        for item in event.request_params.NodesToWrite:
            found = self._variable_of(item.NodeId)
            if found is None or item.Value.Value.Value is not True:
                continue
            camera, name = found
            if name == "Trigger":
                await self._on_trigger(camera)
            elif name == "ResultAck":
                await self._on_ack(camera)

    def _variable_of(self, node_id) -> tuple[str, str] | None:
        for camera, nodes in self._nodes.items():
            for name in ("Trigger", "ResultAck"):
                if nodes[name] == node_id:
                    return camera, name
        return None

    async def _on_trigger(self, camera: str) -> None:
        shake = self._handshakes[camera]
        if shake.trigger_ns is not None or shake.result_ready:
            self.counts["opcua_triggers_refused"] += 1
            await self._write(camera, Trigger=False, TriggerRefused=True,
                              TriggersRefused=self.counts["opcua_triggers_refused"])
            log.warning("outputs.opcua: %s: a trigger came while %s: refused (TriggersRefused counts it)", camera,
                        "Busy" if shake.trigger_ns is not None else "the last result waits for ResultAck")
            return
        shake.trigger_ns = time.monotonic_ns()
        self.counts["opcua_triggers"] += 1
        # Fire the camera first: its exposure overlaps the bookkeeping. The call takes well under a
        # millisecond, and its decision is handled on this loop only after this returns.
        failure = self._fire(camera)
        await self._write(camera, Trigger=False, Busy=True, TriggerRefused=False,
                          TriggerCount=self.counts["opcua_triggers"])
        if failure is not None:  # fail safe: the PLC gets an ERROR result, not silence
            log.error("outputs.opcua: %s: the software trigger failed: %s", camera, failure)
            await self._publish_result(camera, ERROR, float("nan"), -1, True)
            return
        shake.timeout = asyncio.get_running_loop().call_later(
            self.config.result_timeout_s, lambda: asyncio.ensure_future(self._result_timed_out(camera)))

    def _fire(self, camera: str) -> str | None:
        """Software-trigger ``camera`` when it runs ``trigger: software``; return why that failed, else None."""
        source = self.sources.get(camera)
        if source is None or source.trigger_mode != "software":
            return None  # free-running or hardware-triggered: the next frame's decision is the result
        try:
            source.trigger()
        except Exception as exc:  # noqa: BLE001 - reported as an ERROR result
            return str(exc) or type(exc).__name__
        return None

    async def _result_timed_out(self, camera: str) -> None:
        shake = self._handshakes[camera]
        if shake.trigger_ns is None:
            return
        self.counts["opcua_result_timeouts"] += 1
        log.error("outputs.opcua: %s: no decision within %g s of a trigger: answered with an ERROR result",
                  camera, self.config.result_timeout_s)
        shake.timeout = None
        await self._publish_result(camera, ERROR, float("nan"), -1, True)

    async def _on_ack(self, camera: str) -> None:
        self._handshakes[camera].result_ready = False
        await self._write(camera, ResultReady=False, ResultAck=False)


class _UserManager:
    """Admit only the user and password from the environment (``outputs.opcua.username_env``)."""

    def __init__(self, user: str, password: str | None):
        self._user, self._password = user, password or ""

    def get_user(self, iserver, username=None, password=None, certificate=None):
        from asyncua.crypto.permission_rules import User, UserRole

        if username == self._user and password == self._password:
            return User(role=UserRole.User)
        return None
