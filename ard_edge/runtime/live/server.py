"""``LiveServer``: uvicorn serving :class:`~ard_edge.runtime.live.app.LiveApp` on a thread of its own.

The socket is bound on the caller's thread, so a taken port or a refused address is an error
before the run starts. The server shares nothing with the pipeline but the board the sinks
fill; a slow or stuck viewer stalls only this thread's event loop, never capture, inference
or the decision log.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
import time

from ard_edge.errors import ConfigError, OutputError, require
from ard_edge.runtime.config import HttpConfig, split_listen
from ard_edge.runtime.live.app import LiveApp
from ard_edge.runtime.live.board import LiveBoard
from ard_edge.runtime.live.frames import FrameEncoder

log = logging.getLogger(__name__)

TOKEN_ENV = "ARD_EDGE_HTTP_TOKEN"  # the secret a non-local bind requires; never read from YAML
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


def is_local(host: str) -> bool:
    """Whether ``host`` is a loopback address (only this machine can connect)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


class LiveServer:
    """The live page, ``/metrics`` and health endpoints of one run; a context manager.

    Args:
        settings: the ``http:`` section (``listen`` must be set).

    Raises:
        ConfigError: a non-local address without ``ARD_EDGE_HTTP_TOKEN`` set.
        OutputError: the address cannot be bound (port taken, no such interface).
    """

    def __init__(self, settings: HttpConfig):
        host, port = split_listen(settings.listen) or (None, None)
        if host is None:
            raise ConfigError(f"--http {settings.listen!r}: expected HOST:PORT (e.g. 127.0.0.1:8080)")
        self.token = os.environ.get(TOKEN_ENV) or None
        if self.token is None and not is_local(host):
            raise ConfigError(f"--http {settings.listen}: serving beyond this machine needs a token:"
                              f" set {TOKEN_ENV} (clients send it as 'Authorization: Bearer ...'), or bind 127.0.0.1")
        self.host, self.port = host, port
        self.board = LiveBoard(settings.fails_shown)
        encoder = FrameEncoder(settings.max_fps, self.board.metrics.frames_encoded.inc)
        self.app = LiveApp(self.board, encoder, self.token, events_interval_s=1.0 / settings.max_fps)
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> LiveServer:
        uvicorn = require("uvicorn", "live")
        sock = self._bind()
        config = uvicorn.Config(self.app, loop="asyncio", http="h11", lifespan="off", access_log=False,
                                log_config=None, log_level="warning", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        # Not the main thread: uvicorn leaves the process's signal handlers (the run's Ctrl-C) alone.
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="ard-live",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            raise OutputError(f"--http {self.host}:{self.port}: the server did not start (see the log above)")
        log.info("live page on %s%s", self.url, " (token required)" if self.token else "")
        return self

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OutputError(f"--http {self.host}:{self.port}: cannot listen ({exc.strerror or exc});"
                              " pick another address or port") from exc
        sock.listen(64)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]  # the port the system chose for port 0
        return sock

    def stop(self) -> None:
        """Close the event streams and the server; harmless twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self.app.stopping = True
        self._server.should_exit = True
        thread.join(_STOP_TIMEOUT_S)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
