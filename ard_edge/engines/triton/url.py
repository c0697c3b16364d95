"""``triton://host:port/model[/version]`` (gRPC) and ``triton+http://...`` (HTTP) engine addresses.

Parsed without tritonclient, so ``open_engine`` can recognize an address cheaply and a bad one
fails with the form it should have before anything connects.
"""

from __future__ import annotations

import dataclasses
import re

from ard_edge.errors import ConfigError

SCHEMES = {"triton": "grpc", "triton+grpc": "grpc", "triton+http": "http"}
DEFAULT_PORTS = {"grpc": 8001, "http": 8000}
# Path() folds "//" to "/", so an address that went through a click.Path option reads "triton:/host".
_URL = re.compile(r"(?P<scheme>triton(?:\+grpc|\+http)?):/{1,2}(?P<host>\[[^\]]+\]|[^/:]+)(?::(?P<port>\d+))?"
                  r"/(?P<model>[^/]+)(?:/(?P<version>\d+))?/?")
FORM = "triton://HOST[:PORT]/MODEL[/VERSION] (gRPC) or triton+http://HOST[:PORT]/MODEL[/VERSION]"


@dataclasses.dataclass(frozen=True)
class TritonUrl:
    """Where a model is served; ``version`` "" lets the server pick (its version policy)."""

    protocol: str  # grpc | http
    host: str
    port: int
    model: str
    version: str = ""

    @property
    def server(self) -> str:
        """``host:port``, what tritonclient's clients take."""
        return f"{self.host}:{self.port}"

    @property
    def name(self) -> str:
        """The model and version, as an engine file's name would be shown."""
        return f"{self.model}/{self.version}" if self.version else self.model

    def __str__(self) -> str:
        scheme = "triton" if self.protocol == "grpc" else "triton+http"
        return f"{scheme}://{self.server}/{self.name}"


def is_triton_url(text: object) -> bool:
    return str(text).split(":", 1)[0].lower() in SCHEMES


def parse_triton_url(text: object) -> TritonUrl:
    """The parts of a Triton engine address, or ConfigError showing the expected form."""
    match = _URL.fullmatch(str(text).strip())
    if not match:
        raise ConfigError(f"--engine {text}: not a Triton address; expected {FORM}")
    protocol = SCHEMES[match["scheme"].lower()]
    port = int(match["port"]) if match["port"] else DEFAULT_PORTS[protocol]
    if not 0 < port < 65536:
        raise ConfigError(f"--engine {text}: port {port} is not a TCP port; expected {FORM}")
    return TritonUrl(protocol, match["host"], port, match["model"], match["version"] or "")
