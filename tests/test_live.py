"""``run --http``: the live page, /metrics, health endpoints, on real runs (folder replay, viky.cti), with
httpx, prometheus-client's parser and a real headless chromium. Timing is never asserted."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from _chromium import CHROMIUM, Chromium
from _models import exported_onnx
from ard_edge.camera import CameraConfig, GenICamCamera, simulator_producer
from ard_edge.engines import open_engine
from ard_edge.errors import ConfigError, OutputError
from ard_edge.runtime import Pipeline, RuntimeConfig
from ard_edge.runtime.config import AppConfig, HttpConfig
from ard_edge.config import from_dict
from ard_edge.runtime.live import TOKEN_ENV, LiveServer

ARD_EDGE = Path(sys.executable).parent / "ard-edge"
VIKY = simulator_producer()
DOCS_SCREENSHOT = os.environ.get("ARD_EDGE_LIVE_SCREENSHOT")  # where to also write the page's screenshot

needs_viky = pytest.mark.skipif(VIKY is None, reason="the installed genicam package has no viky.cti")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return exported_onnx(tmp_path_factory, channels=1)


@pytest.fixture
def replay(tmp_path) -> Path:
    """Six 120x96 grey frames (the page shows them at their own size)."""
    (folder := tmp_path / "replay").mkdir()
    for i, frame in enumerate(np.random.default_rng(0).integers(40, 220, (6, 96, 120), np.uint8)):
        cv2.imwrite(str(folder / f"{i:02d}.png"), frame)
    return folder


@pytest.fixture(autouse=True)
def no_token(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv("GENICAM_GENTL64_PATH", raising=False)


class _Run:
    """``ard-edge run --http 127.0.0.1:0 --keep-serving`` in a subprocess; ``url`` is what it printed."""

    def __init__(self, tmp_path: Path, args: list, env: dict | None = None):
        self.out = tmp_path / "out"
        self.stderr_path = tmp_path / "stderr"
        with open(self.stderr_path, "w") as stderr:
            self.proc = subprocess.Popen([str(ARD_EDGE), "run", *map(str, args), "--out", str(self.out),
                                          "--http", "127.0.0.1:0", "--keep-serving"],
                                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                         env={**os.environ, **(env or {})})
        _wait_for(lambda: "live page: http://" in self.stderr() or self.proc.poll() is not None, 60)
        match = re.search(r"live page: (http://127\.0\.0\.1:\d+/)", self.stderr())
        assert match, self.stderr()
        self.url = match[1]

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def summary(self) -> dict:
        _wait_for(lambda: (self.out / "summary.json").is_file() or self.proc.poll() is not None, 120)
        return json.loads((self.out / "summary.json").read_text())

    def stop(self) -> int:
        """SIGINT ends the run (if it still goes on), and a second one, once it says so, the serving."""
        if self.proc.poll() is None and "the run is over" not in self.stderr():
            self.proc.send_signal(signal.SIGINT)
        _wait_for(lambda: "the run is over" in self.stderr() or self.proc.poll() is not None, 60)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.proc.kill()


def _wait_for(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _metrics(url: str) -> dict[tuple[str, tuple], float]:
    """``/metrics`` parsed by prometheus-client: (sample name, sorted labels) -> value."""
    response = httpx.get(url + "metrics", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def _raw_get(url: str, path: str) -> int:
    """The status of GET ``path`` sent as written (httpx would normalize ``..`` away)."""
    host, port = re.match(r"http://([\d.]+):(\d+)/", url).groups()
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", path)
    status = connection.getresponse().status
    connection.close()
    return status


def test_http_on_a_folder_replay_serves_every_endpoint_and_metrics_match_the_summary(model, replay, tmp_path):
    run = _Run(tmp_path, ["--camera", f"folder:{replay}", "--engine", model, "--fps", 20, "--loop",
                          "--max-frames", 40])
    try:
        assert httpx.get(run.url + "healthz", timeout=10).json() == {"alive": True}
        page = httpx.get(run.url, timeout=10)
        assert page.status_code == 200 and 'src="/static/live.js"' in page.text
        assert "EventSource" in httpx.get(run.url + "static/live.js", timeout=10).text
        summary = run.summary()
        camera = f"folder:{replay}"
        # No viewer asked for a frame: nothing was encoded.
        assert _metrics(run.url)[("ard_edge_live_frames_encoded_total", ())] == 0

        status = httpx.get(run.url + "api/status", timeout=10).json()
        cam = status["cameras"][camera]
        assert status["run_id"] == summary["run_id"] and cam["decisions"] == summary["decisions"]
        assert cam["frames_captured"] == summary["frames_captured"] and cam["state"] == "ended"
        frame = httpx.get(run.url + "frame.jpg", params={"camera": camera}, timeout=10)
        assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(frame.content, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (96, 120)
        assert httpx.get(run.url + "frame.jpg", params={"camera": "nope"}, timeout=10).status_code == 404

        metrics = _metrics(run.url)
        labels = (("camera", camera),)
        for verdict, count in summary["decisions"].items():
            assert metrics[("ard_edge_decisions_total", (("camera", camera), ("verdict", verdict)))] == count
        assert metrics[("ard_edge_frames_captured_total", labels)] == summary["frames_captured"] == 40
        assert metrics[("ard_edge_frames_dropped_total", labels)] == summary["dropped"]
        assert metrics[("ard_edge_camera_reconnects_total", labels)] == summary["reconnects"]
        decided = sum(summary["decisions"].values())
        assert metrics[("ard_edge_capture_to_decision_seconds_count", labels)] == decided
        assert metrics[("ard_edge_live_frames_encoded_total", ())] == 1
        assert metrics[("ard_edge_sink_stat", (("camera", camera), ("stat", "decision_lines")))] == decided
        model_id = json.loads((run.out / "decisions.jsonl").read_text().splitlines()[-1])["model_id"]
        assert model_id and ("ard_edge_model_info", (("camera", camera), ("engine", summary["engine"]), ("model_id", model_id))) in metrics

        ready = httpx.get(run.url + "readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["reasons"] == [f"{camera}: the run has ended"]

        # Evidence: the FAILs the saver wrote, and nothing outside the run's evidence folder.
        fails = status["fails"]
        assert len(fails) == min(12, summary["decisions"]["FAIL"])
        evidence = httpx.get(run.url + fails[0]["heatmap"].lstrip("/"), timeout=10) if fails else None
        assert evidence is None or (evidence.status_code == 200 and evidence.content.startswith(b"\x89PNG"))
        for path in ("/evidence/0/fail/../summary.json", "/evidence/0/fail/..%2Fsummary.json",
                     "/evidence/../../etc/passwd", "/evidence/0/fail/%2e%2e/decisions.jsonl",
                     "/evidence/0/fail/missing.png", "/evidence/7/fail/x.png", "/nope"):
            assert _raw_get(run.url, path) == 404, path
        assert httpx.post(run.url + "api/status", timeout=10).status_code == 405  # read-only
        assert run.stop() == 0
    finally:
        run.stop()


@needs_viky
@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="chromium is not installed (.ci/run installs it)")
def test_the_live_page_in_headless_chromium_on_the_simulator(model, tmp_path):
    config = tmp_path / "ard-edge.yaml"
    config.write_text("cameras:\n  cam0:\n    simulator: true\n    serial: \"1\"\n    pixel_format: Mono8\n"
                      "    width: 320\n    height: 240\n    frame_rate: 20\nruntime:\n  min_free_disk_mb: 0\n")
    run = _Run(tmp_path, ["--camera", "cam0", "--config", config, "--engine", model, "--duration", 60])
    browser = None
    try:
        _wait_for(lambda: httpx.get(run.url + "readyz", timeout=10).status_code == 200, 60)
        assert _metrics(run.url)[("ard_edge_live_frames_encoded_total", ())] == 0  # no viewer yet
        browser = Chromium(tmp_path / "profile")
        browser.navigate(run.url)
        count = "Number(document.querySelector('[data-camera=\"cam0\"] .count-FAIL')?.textContent || 0)"
        _wait_for(lambda: browser.evaluate(count) > 0, 60)
        first = browser.evaluate(count)
        _wait_for(lambda: browser.evaluate(count) > first, 60)  # it updates by itself
        _wait_for(lambda: browser.evaluate("document.querySelector('.frame').naturalWidth") == 320, 30)
        loaded = "[...document.querySelectorAll('#fails img')].filter(i => i.complete && i.naturalWidth > 0).length"
        _wait_for(lambda: browser.evaluate(loaded) > 0, 30)  # the saved evidence images load
        page = browser.evaluate("""({
            ready: document.getElementById('ready').textContent,
            state: document.querySelector('[data-camera="cam0"] .state').textContent,
            verdict: document.querySelector('[data-camera="cam0"] .verdict').textContent,
            engine: document.querySelector('[data-camera="cam0"] .engine').textContent,
            fail: document.querySelector('#fails a').getAttribute('href'),
        })""")
        assert page["ready"] == "ready" and page["state"] == "streaming" and page["verdict"] in ("PASS", "FAIL")
        assert page["engine"].startswith("onnxruntime:") and page["fail"].startswith("/evidence/0/fail/")
        assert httpx.get(run.url + page["fail"].lstrip("/"), timeout=10).content.startswith(b"\x89PNG")
        shot = browser.screenshot(tmp_path / "live.png")
        if DOCS_SCREENSHOT:
            browser.screenshot(Path(DOCS_SCREENSHOT))
        assert cv2.imread(str(shot)).shape[1] == 1280
        # The viewer's frames were encoded, and at a capped rate (5 fps for one camera at most).
        encoded = _metrics(run.url)[("ard_edge_live_frames_encoded_total", ())]
        assert encoded > 0
    finally:
        if browser is not None:
            browser.close()
        assert run.stop() == 0, run.stderr()


@needs_viky
def test_readyz_flips_to_503_when_the_camera_is_lost_and_back_when_it_reopens(model, tmp_path):
    config = CameraConfig(producer=VIKY, serial="1", pixel_format="Mono8", width=128, height=100, frame_rate=50.0)
    camera = GenICamCamera(config, name="cam0", reconnect_initial_s=1.5)
    with LiveServer(HttpConfig(listen="127.0.0.1:0")) as server, open_engine(model) as engine, camera:
        ready = server.url + "readyz"
        assert httpx.get(ready, timeout=10).status_code == 503  # no engine loaded, no camera yet
        pipeline = Pipeline(camera, engine, RuntimeConfig(status_interval_s=0.05), sinks=[server.board.sink()])
        pipeline.start()
        try:
            _wait_for(lambda: httpx.get(ready, timeout=10).status_code == 200)
            with camera._io_lock:  # as a driver invalidates a lost device
                camera._ia.destroy()
            _wait_for(lambda: httpx.get(ready, timeout=10).status_code == 503)
            assert httpx.get(ready, timeout=10).json()["reasons"] == ["cam0: camera reconnecting"]
            assert _metrics(server.url)[("ard_edge_camera_streaming", (("camera", "cam0"),))] == 0
            _wait_for(lambda: httpx.get(ready, timeout=10).status_code == 200)
            assert _metrics(server.url)[("ard_edge_camera_reconnects_total", (("camera", "cam0"),))] == 1
        finally:
            pipeline.stop()
            summary = pipeline.join(timeout_s=30)
        assert summary.reconnects == 1 and summary.lost == 0
        assert httpx.get(ready, timeout=10).status_code == 503


def test_a_non_local_bind_without_a_token_refuses_to_start_with_one_line(model, replay, tmp_path):
    proc = subprocess.run([str(ARD_EDGE), "run", "--camera", f"folder:{replay}", "--engine", str(model),
                           "--out", str(tmp_path / "out"), "--http", "0.0.0.0:0"],
                          capture_output=True, text=True, timeout=60, env={**os.environ})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and TOKEN_ENV in lines[0], proc.stderr
    assert not (tmp_path / "out" / "decisions.jsonl").exists()


def test_a_token_guards_every_request(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "s3cret")
    with LiveServer(HttpConfig(listen="0.0.0.0:0")) as server:
        url = f"http://127.0.0.1:{server.port}/"
        for path in ("", "healthz", "metrics", "api/status"):
            assert httpx.get(url + path, timeout=10).status_code == 401, path
        assert httpx.get(url + "healthz", headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
        assert httpx.get(url + "healthz", headers={"Authorization": "Bearer s3cret"}, timeout=10).status_code == 200
        with httpx.Client(timeout=10) as browser_like:  # ?token= once, then the cookie carries it
            assert browser_like.get(url, params={"token": "s3cret"}).status_code == 200
            assert browser_like.get(url + "api/status").status_code == 200


def test_http_config_names_the_bad_key():
    with pytest.raises(ConfigError, match=r"http\.listen: expected HOST:PORT"):
        from_dict(AppConfig, {"http": {"listen": "8080"}})
    with pytest.raises(ConfigError, match=r"http\.max_fps"):
        from_dict(AppConfig, {"http": {"listen": "127.0.0.1:8080", "max_fps": 0}})
    assert from_dict(AppConfig, {"http": {"listen": "[::1]:8080"}}).http.listen == "[::1]:8080"


def test_a_taken_port_is_one_clear_error():
    with LiveServer(HttpConfig(listen="127.0.0.1:0")) as server:
        with pytest.raises(OutputError, match="cannot listen"):
            LiveServer(HttpConfig(listen=f"127.0.0.1:{server.port}")).start()


def test_the_live_modules_and_run_help_load_no_server_or_metrics_package():
    code = ("import sys, ard_edge.runtime.live\nfrom ard_edge.cli.main import main\n"
            "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('uvicorn', 'prometheus_client', 'httpx', 'h11') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--http HOST:PORT" in result.stdout and result.stdout.strip().splitlines()[-1] == "[]"


def test_bad_requests_get_a_short_4xx_never_a_traceback():
    import socket

    with LiveServer(HttpConfig(listen="127.0.0.1:0")) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            assert raw.recv(4096).startswith(b"HTTP/1.1 400 ")
        for method, path, status in (("DELETE", "", 405), ("PUT", "metrics", 405), ("GET", "frame.jpg", 404),
                                     ("GET", "evidence/0/fail/x.png", 404), ("GET", "static/../server.py", 404)):
            response = httpx.request(method, server.url + path, timeout=10)
            assert response.status_code == status and "Traceback" not in response.text, (method, path)
