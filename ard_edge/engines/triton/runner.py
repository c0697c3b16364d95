"""A model served by NVIDIA Triton Inference Server, behind the same Engine interface as a local file.

The input spec, batch range and ard-edge metadata come from the server (model metadata and
config, where ``build-engine --target triton`` put the metadata as a parameter), so the runtime
treats a served model like any engine. Every failure is an EngineError naming what to do; while
the server is unreachable, calls fail at once (the runtime turns their frames into ERROR
decisions) and a readiness probe retries with exponential backoff, counted in :meth:`stats`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any

import numpy as np

from ard_edge.engines.base import OUTPUT_NAMES, Engine, InputSpec
from ard_edge.engines.metadata import METADATA_KEY, metadata_from_props
from ard_edge.engines.triton.url import TritonUrl, parse_triton_url
from ard_edge.errors import EngineError, require

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
RECONNECT_FIRST_S = 0.25  # first wait after a lost server; doubled per failed probe
RECONNECT_MAX_S = 5.0
# gRPC status codes (and HTTP's connection failures) that mean the server is gone, not the request bad.
_LOST = ("UNAVAILABLE", "CANCELLED", "Connection refused", "Broken pipe", "reset by peer")
_TIMED_OUT = ("DEADLINE_EXCEEDED", "Deadline Exceeded", "timed out", "Timeout")


class TritonEngine(Engine):
    """``triton://host:8001/model`` (gRPC) or ``triton+http://host:8000/model``.

    Args:
        url: the address (see :mod:`ard_edge.engines.triton.url`).
        timeout_s: the longest one call (probe, config, inference) may take.
    """

    backend = "triton"

    def __init__(self, url: str | TritonUrl, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.url = url if isinstance(url, TritonUrl) else parse_triton_url(url)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._counts = {"calls": 0, "failed_calls": 0, "timeouts": 0, "disconnects": 0, "reconnects": 0}
        self._lost_s: float | None = None  # when the server was lost; None while connected
        self._retry_s = 0.0  # monotonic time of the next readiness probe
        self._backoff_s = RECONNECT_FIRST_S
        self._client = self._make_client()
        try:
            self._check_ready()
            spec, metadata = self._read_model()
            super().__init__(self.url.model, spec, metadata)
        except BaseException:
            self._client.close()
            raise
        self.path = self.url  # str() is the address; .name the model, as for an engine file

    @property
    def name(self) -> str:
        return f"triton:{self.metadata.get('precision', 'fp32')}:{self.url.name}@{self.url.server}"

    # -- connecting

    def _make_client(self):
        if self.url.protocol == "http":
            http = require("tritonclient.http", "triton")
            return http.InferenceServerClient(self.url.server, connection_timeout=self.timeout_s,
                                              network_timeout=self.timeout_s)
        grpc = require("tritonclient.grpc", "triton")
        return grpc.InferenceServerClient(self.url.server)

    def _call(self, method: str, *args, **kwargs):
        """One client call with this engine's timeout; tritonclient's errors become EngineError."""
        if self.url.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout_s
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - InferenceServerException, socket and gevent errors
            kind = _failure_kind(exc)
            if method == "infer":
                self._infer_failed(kind)
            raise EngineError(self._failure_message(kind, method, exc)) from exc

    def _failure_message(self, kind: str, method: str, exc: Exception) -> str:
        where = f"the Triton server at {self.url.server}"
        if kind == "timeout":
            return f"{where} did not answer {method} within {self.timeout_s:g} s: is it overloaded? raise the timeout"
        if kind == "lost":
            return f"{where} is unreachable ({method}): start it or check the address {self.url}"
        detail = exc.message() if hasattr(exc, "message") else exc
        return f"{where} refused {method} for model '{self.url.name}': {detail}"

    def _check_ready(self) -> None:
        if not self._call("is_server_ready"):
            raise EngineError(f"the Triton server at {self.url.server} is up but not ready (still loading models?):"
                              " wait for /v2/health/ready or check its log")
        if not self._call("is_model_ready", self.url.model, self.url.version):
            raise EngineError(f"model '{self.url.name}' is not loaded on the Triton server at {self.url.server}"
                              f" ({self._repository_note()}): check its model repository and log")

    def _repository_note(self) -> str:
        try:
            index = self._call("get_model_repository_index", **self._as_json())
        except EngineError:
            return "its repository index is unavailable"
        models = index.get("models", []) if isinstance(index, dict) else index
        known = [f"{m.get('name')}{'/' + m['version'] if m.get('version') else ''}: {m.get('state', '?')}"
                 for m in models]
        return "it has " + (", ".join(known) if known else "no models")

    def _as_json(self) -> dict[str, bool]:
        return {"as_json": True} if self.url.protocol == "grpc" else {}

    def _read_model(self) -> tuple[InputSpec, dict[str, Any]]:
        """The input spec (model metadata + config) and the ard-edge metadata parameter (config)."""
        config = self._call("get_model_config", self.url.model, self.url.version, **self._as_json())
        config = config.get("config", config)  # gRPC wraps it in the response message
        served = self._call("get_model_metadata", self.url.model, self.url.version, **self._as_json())
        if not self.url.version and served.get("versions"):
            # Pin the version served now: a newer one loaded mid-run must not take over this run's
            # decisions unnoticed; once the pinned one is unloaded, calls fail (ERROR decisions).
            latest = max(served["versions"], key=int)
            self.url = dataclasses.replace(self.url, version=str(latest))
        where = f"model '{self.url.name}' on {self.url.server}"
        parameter = config.get("parameters", {}).get(METADATA_KEY, {}).get("string_value")
        if parameter is None:
            raise EngineError(f"{where} has no '{METADATA_KEY}' parameter in its config:"
                              " write its repository with ard-edge build-engine --target triton")
        metadata = metadata_from_props({METADATA_KEY: parameter}, where)
        return _input_spec(served, int(config.get("max_batch_size", 0)), where), metadata

    # -- inferring

    def _infer_impl(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        self._before_call()
        module = require(f"tritonclient.{self.url.protocol}", "triton")
        request = module.InferInput(self.input_spec.name, list(frames.shape), "UINT8")
        request.set_data_from_numpy(frames)
        wanted = [module.InferRequestedOutput(name) for name in OUTPUT_NAMES]
        response = self._call("infer", self.url.model, [request], model_version=self.url.version, outputs=wanted)
        with self._lock:
            self._counts["calls"] += 1
        return {name: response.as_numpy(name) for name in OUTPUT_NAMES}

    def _before_call(self) -> None:
        """While the server is lost: fail at once until the backoff allows a readiness probe."""
        with self._lock:
            if self._lost_s is None:
                return
            now_s = time.monotonic()
            if now_s < self._retry_s:
                self._counts["failed_calls"] += 1
                raise EngineError(f"the Triton server at {self.url.server} was lost {now_s - self._lost_s:.1f} s ago;"
                                  f" reconnecting (next try in {self._retry_s - now_s:.2f} s)")
            self._retry_s = now_s + self._backoff_s  # one prober at a time; others fail fast meanwhile
        try:
            self._check_ready()
        except EngineError:
            with self._lock:
                self._counts["failed_calls"] += 1
                self._backoff_s = min(self._backoff_s * 2, RECONNECT_MAX_S)
                self._retry_s = time.monotonic() + self._backoff_s
            raise
        with self._lock:
            if self._lost_s is not None:
                log.warning("Triton server at %s is back after %.1f s", self.url.server, time.monotonic() - self._lost_s)
                self._counts["reconnects"] += 1
                self._lost_s, self._backoff_s = None, RECONNECT_FIRST_S

    def _infer_failed(self, kind: str) -> None:
        with self._lock:
            self._counts["failed_calls"] += 1
            if kind == "timeout":
                self._counts["timeouts"] += 1
            elif kind == "lost" and self._lost_s is None:
                log.warning("the Triton server at %s is unreachable; frames become ERROR decisions until it is back",
                            self.url.server)
                self._counts["disconnects"] += 1
                self._lost_s = time.monotonic()
                self._retry_s = self._lost_s + self._backoff_s

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def server_batch_sizes(self) -> dict[int, int]:
        """Executions per batch size of this model, from the server's statistics: what its batcher formed."""
        stats = self._call("get_inference_statistics", self.url.model, self.url.version, **self._as_json())
        models = stats.get("model_stats", [])
        return {int(s["batch_size"]): int(s["compute_infer"]["count"])
                for model in models for s in model.get("batch_stats", [])}

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(url=str(self.url), timeout_s=self.timeout_s)
        return info

    def _close_impl(self) -> None:
        self._client.close()


def _failure_kind(exc: Exception) -> str:
    """timeout | lost (the server is gone) | refused (it answered with an error)."""
    status = exc.status() if callable(getattr(exc, "status", None)) else ""
    text = f"{status or ''} {exc}"
    if any(marker in text for marker in _TIMED_OUT):
        return "timeout"
    if any(marker in text for marker in _LOST) or isinstance(exc, OSError):
        return "lost"
    return "refused"


def _input_spec(served: dict[str, Any], max_batch_size: int, where: str) -> InputSpec:
    """The InputSpec of a served model: one UINT8 input, [-1, H, W, C] with batching on."""
    inputs = served.get("inputs", [])
    if len(inputs) != 1 or inputs[0].get("datatype") != "UINT8":
        found = [(i.get("name"), i.get("datatype")) for i in inputs]
        raise EngineError(f"{where}: expected one UINT8 input of camera frames, got {found}")
    shape = [int(dim) for dim in inputs[0].get("shape", [])]  # gRPC's JSON spells int64 as strings
    if len(shape) != 4 or min(shape[1:]) < 1:
        raise EngineError(f"{where}: its input {inputs[0]['name']} has shape {shape}, expected [batch, H, W, C]")
    _, height, width, channels = shape
    if max_batch_size > 0:
        return InputSpec(height, width, channels, min_batch=1, max_batch=max_batch_size, name=inputs[0]["name"])
    if shape[0] < 1:
        raise EngineError(f"{where}: no batching (max_batch_size 0) and a variable batch dimension {shape}")
    return InputSpec(height, width, channels, min_batch=shape[0], max_batch=shape[0], name=inputs[0]["name"])

