"""The read-only ASGI app: the page, ``/api/status``, ``/api/events``, ``/frame.jpg``, evidence, ``/metrics``, health.

No web framework: a dozen GET routes need none. Every request is answered with a short plain
status for anything unexpected (404, 405, 401), and an exception inside a handler becomes a
one-line 500, never a traceback page.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from ard_edge.runtime.live.board import LiveBoard
    from ard_edge.runtime.live.frames import FrameEncoder

log = logging.getLogger(__name__)

_STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
           "/static/live.js": ("live.js", "text/javascript; charset=utf-8"),
           "/static/live.css": ("live.css", "text/css; charset=utf-8")}
_EVIDENCE = re.compile(r"^/evidence/(?P<camera>[0-9]{1,4})/(?P<kind>fail|pass)/(?P<name>[A-Za-z0-9_.-]+\.png)$")
_COOKIE = "ard_edge_token"
_HEADERS_NO_CACHE = [(b"cache-control", b"no-store")]


class LiveApp:
    """ASGI 3 app over a :class:`LiveBoard`.

    Args:
        board: what the run reports.
        encoder: renders frames for ``/frame/<camera>.jpg``.
        token: required on every request when set (``Authorization: Bearer``, the ``token``
            query parameter, which also sets a cookie for the page's own requests, or that cookie).
        events_interval_s: how often ``/api/events`` pushes the status.
    """

    def __init__(self, board: LiveBoard, encoder: FrameEncoder, token: str | None, events_interval_s: float):
        self.board = board
        self.encoder = encoder
        self.token = token
        self.events_interval_s = events_interval_s
        self.viewers = 0  # open /api/events streams
        self.stopping = False  # set by the server on shutdown: event streams end

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            return  # no websockets, no lifespan events
        try:
            await self._handle(scope, receive, send)
        except Exception as exc:  # noqa: BLE001 - one line in the log, a short 500 to the client
            log.warning("live page: %s %s failed: %s: %s", scope.get("method"), scope.get("path"),
                        type(exc).__name__, exc)
            await _send(send, 500, b"internal error\n")

    async def _handle(self, scope: dict, receive, send) -> None:
        method, path = scope["method"], scope["path"]
        if method not in ("GET", "HEAD"):
            await _send(send, 405, b"read-only: GET only\n", extra=[(b"allow", b"GET, HEAD")])
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        extra = self._authorize(scope, query)
        if extra is None:
            await _send(send, 401, b"a token is required: Authorization: Bearer <token> or ?token=<token>\n",
                        extra=[(b"www-authenticate", b"Bearer")])
            return
        body_only = method == "GET"
        if path in _STATIC:
            name, content_type = _STATIC[path]
            body = resources.files("ard_edge.runtime.live").joinpath("static", name).read_bytes()
            await _send(send, 200, body, content_type, extra, body_only)
        elif path == "/healthz":
            await _send_json(send, 200, {"alive": True}, extra, body_only)
        elif path == "/readyz":
            reasons = self.board.readiness()
            await _send_json(send, 503 if reasons else 200, {"ready": not reasons, "reasons": reasons},
                             extra, body_only)
        elif path == "/api/status":
            await _send_json(send, 200, self.board.snapshot(), extra, body_only)
        elif path == "/api/events":
            await self._events(receive, send, extra)
        elif path == "/metrics":
            body, content_type = self.board.metrics.exposition()
            await _send(send, 200, body, content_type, extra, body_only)
        elif path == "/frame.jpg":  # ?camera=NAME: a replay's name holds slashes, so not a path segment
            await self._frame(send, query.get("camera", [""])[0], extra, body_only)
        elif match := _EVIDENCE.match(path):
            await self._evidence(send, int(match["camera"]), match["kind"], match["name"], extra, body_only)
        else:
            await _send(send, 404, b"not found\n", extra=extra)

    def _authorize(self, scope: dict, query: dict[str, list[str]]) -> list[tuple[bytes, bytes]] | None:
        """The headers to add when authorized (a Set-Cookie when the query carried the token), else None."""
        if self.token is None:
            return []
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        bearer = headers.get("authorization", "")
        if bearer.startswith("Bearer ") and _same(bearer[len("Bearer "):], self.token):
            return []
        cookies = dict(part.strip().split("=", 1) for part in headers.get("cookie", "").split(";") if "=" in part)
        if _same(cookies.get(_COOKIE, ""), self.token):
            return []
        if _same(query.get("token", [""])[0], self.token):
            return [(b"set-cookie", f"{_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1"))]
        return None

    async def _frame(self, send, camera: str, extra: list, body_only: bool) -> None:
        view = self.board.cameras.get(camera)
        jpeg = None if view is None else self.encoder.jpeg(camera, view)
        if jpeg is None:
            await _send(send, 404, b"no frame from this camera yet\n", extra=extra)
            return
        await _send(send, 200, jpeg, "image/jpeg", extra + _HEADERS_NO_CACHE, body_only)

    async def _evidence(self, send, camera: int, kind: str, name: str, extra: list, body_only: bool) -> None:
        views = self.board.views
        root = views[camera].evidence_dir if camera < len(views) else None
        path = None if root is None else (root / kind / name)
        # The name pattern already excludes "/" and "..": resolving guards against a link out of the folder.
        if path is None or ".." in name or not _inside(path, root / kind) or not path.is_file():
            await _send(send, 404, b"not found\n", extra=extra)
            return
        await _send(send, 200, path.read_bytes(), "image/png", extra, body_only)

    async def _events(self, receive, send, extra: list) -> None:
        """Server-sent events: the status as one ``data:`` line every ``events_interval_s``, until the viewer leaves."""
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), *_HEADERS_NO_CACHE, *extra]})
        gone = asyncio.ensure_future(_disconnected(receive))
        self.viewers += 1
        try:
            while not gone.done() and not self.stopping:
                payload = json.dumps(self.board.snapshot(), allow_nan=False)
                await send({"type": "http.response.body", "body": f"data: {payload}\n\n".encode(), "more_body": True})
                await asyncio.wait([gone], timeout=self.events_interval_s)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.viewers -= 1
            gone.cancel()


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


async def _send_json(send, status: int, data: Any, extra: list, body_only: bool = True) -> None:
    body = json.dumps(data, allow_nan=False).encode()
    await _send(send, status, body, "application/json", extra + _HEADERS_NO_CACHE, body_only)


async def _send(send, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
                extra: list | None = None, body_only: bool = True) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
               (b"x-content-type-options", b"nosniff"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body if body_only else b""})
