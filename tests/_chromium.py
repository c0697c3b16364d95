"""A real headless Debian chromium, driven over its DevTools protocol (a websocket), for the live-page tests.

Never downloads a browser: it runs /usr/bin/chromium (``.ci/run`` installs Debian's package),
with every background service off so it contacts nothing but the page under test.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-default-apps", "--disable-extensions", "--window-size=1280,900", "--remote-debugging-port=0")


class Chromium:
    """One browser with one page; :meth:`evaluate` runs JavaScript in it."""

    def __init__(self, profile: Path):
        import websocket

        self._log = open(profile.parent / "chromium.log", "w+")
        self.proc = subprocess.Popen([CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=self._log)
        port = self._devtools_port()
        page = self._page_target(port)
        self.ws = websocket.create_connection(page, timeout=30, suppress_origin=True)
        self._ids = itertools.count(1)

    def _devtools_port(self, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._log.seek(0)
            if match := re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", self._log.read()):
                return int(match[1])
            assert self.proc.poll() is None, f"chromium exited: {self._log.read()}"
            time.sleep(0.05)
        raise AssertionError("chromium did not open its DevTools port")

    @staticmethod
    def _page_target(port: int) -> str:
        import httpx

        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")

    def call(self, method: str, **params) -> dict:
        call_id = next(self._ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == call_id:
                assert "error" not in message, message
                return message["result"]

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()
