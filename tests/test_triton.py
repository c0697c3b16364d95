"""Serving from NVIDIA Triton Inference Server, against a real tritonserver (no mocks).

The server is the tritonserver 2.51 binary from the nvidia-pytriton wheel (``make`` installs it),
started on free loopback ports and always stopped. It has no onnxruntime backend, so the
repositories ``build-engine --target triton`` writes are served through the Python backend
running ard-edge's ONNX Runtime engine on the same model.onnx (tests/assets/triton_python_model.py);
the config the writer produced is otherwise what the server loads. That the onnxruntime backend
itself loads the repository is not tested here (README).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from _models import exported_onnx
from ard_edge.camera import CameraConfig, GenICamCamera, simulator_producer
from ard_edge.deploy.build import BuildRequest
from ard_edge.deploy.triton import TritonOptions, build_triton_repository
from ard_edge.deploy.triton_server import LocalTritonServer, as_python_backend
from ard_edge.engines import open_engine
from ard_edge.engines.base import BatchRange
from ard_edge.engines.metadata import read_onnx_metadata
from ard_edge.engines.triton import parse_triton_url
from ard_edge.errors import ConfigError, EngineError
from ard_edge.runtime import RuntimeConfig, Sink

ASSETS = Path(__file__).parent / "assets"
PYTHON_MODEL = ASSETS / "triton_python_model.py"
ARD_EDGE = Path(sys.executable).parent / "ard-edge"
VIKY = simulator_producer()


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    return exported_onnx(tmp_path_factory, channels=1)


def served_repository(onnx: Path, folder: Path, name: str = "ard", max_wait_ms: float = 20.0) -> Path:
    """A repository written by the Triton target, then switched to the Python-backend stand-in."""
    build_triton_repository(BuildRequest(onnx=onnx, out=folder, batch=BatchRange(1, 4, 8)),
                            TritonOptions(name=name, max_wait_ms=max_wait_ms))
    as_python_backend(folder / name, PYTHON_MODEL)
    return folder


@pytest.fixture(scope="module")
def server(onnx_model, tmp_path_factory):
    with LocalTritonServer(served_repository(onnx_model, tmp_path_factory.mktemp("repo"))) as running:
        yield running


def brick_frames(count: int, size: int = 64) -> np.ndarray:
    """Crops of scikit-image's photographed brick wall: real texture, as a camera sees it."""
    from skimage import data

    wall = data.brick()
    rng = np.random.default_rng(1)
    crops = []
    for _ in range(count):
        y, x = rng.integers(0, wall.shape[0] - 128, 2)
        crops.append(cv2.resize(wall[y:y + 128, x:x + 128], (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(crops)[..., None]


# -- addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, parts", [
    ("triton://127.0.0.1:8001/ard", ("grpc", "127.0.0.1", 8001, "ard", "")),
    ("triton://gpu-server/ard/3", ("grpc", "gpu-server", 8001, "ard", "3")),
    ("triton+http://10.0.0.5/line_2", ("http", "10.0.0.5", 8000, "line_2", "")),
    (Path("triton://127.0.0.1:9001/ard"), ("grpc", "127.0.0.1", 9001, "ard", "")),  # "//" folded by click.Path
])
def test_addresses_parse(text, parts):
    url = parse_triton_url(text)
    assert (url.protocol, url.host, url.port, url.model, url.version) == parts


@pytest.mark.parametrize("text", ["triton://host:8001", "triton://host:99999/ard", "triton://:8001/ard"])
def test_a_bad_address_names_the_form(text):
    with pytest.raises(ConfigError, match=r"triton://HOST\[:PORT\]/MODEL"):
        parse_triton_url(text)


# -- the repository the Triton target writes ---------------------------------------------------------


def test_config_pbtxt_parses_with_tritons_protobuf_and_matches_the_onnx_graph(onnx_model, tmp_path):
    import onnx
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    written = build_triton_repository(BuildRequest(onnx=onnx_model, out=tmp_path, batch=BatchRange(2, 4, 16)),
                                      TritonOptions(name="line1", instances=2, kind="gpu", max_wait_ms=1.5),
                                      probe=lambda: (None, "no GPU in this test"))
    config = text_format.Parse((tmp_path / "line1" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert written["backend"] == config.backend == "onnxruntime"
    assert (tmp_path / "line1" / "1" / "model.onnx").read_bytes() == onnx_model.read_bytes()
    assert config.name == "line1" and config.max_batch_size == 16
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 16]
    assert config.dynamic_batching.max_queue_delay_microseconds == 1500
    assert [(g.count, g.kind) for g in config.instance_group] == [(2, model_config_pb2.ModelInstanceGroup.KIND_GPU)]
    assert json.loads(config.parameters["ard_edge"].string_value) == dict(read_onnx_metadata(onnx_model), precision="fp32")

    graph = onnx.load(str(onnx_model)).graph
    onnx_types = {1: model_config_pb2.TYPE_FP32, 2: model_config_pb2.TYPE_UINT8, 9: model_config_pb2.TYPE_BOOL}
    for declared, values in ((config.input, graph.input), (config.output, graph.output)):
        assert [t.name for t in declared] == [v.name for v in values]
        for tensor, value in zip(declared, values):
            shape = value.type.tensor_type.shape.dim
            assert tensor.data_type == onnx_types[value.type.tensor_type.elem_type], tensor.name
            assert shape[0].dim_param, f"{tensor.name}: the graph's batch dimension must be dynamic"
            per_item = [d.dim_value if d.dim_value > 0 else -1 for d in shape[1:]]
            if per_item:
                assert list(tensor.dims) == per_item and not tensor.HasField("reshape"), tensor.name
            else:  # a per-frame scalar: [1] on the wire, [] in the graph
                assert list(tensor.dims) == [1] and list(tensor.reshape.shape) == [], tensor.name


def test_a_new_build_adds_a_version_and_leaves_the_served_one_alone(onnx_model, tmp_path):
    first = build_triton_repository(BuildRequest(onnx=onnx_model, out=tmp_path), TritonOptions())
    served = tmp_path / "ard" / "1" / "model.onnx"
    before = served.stat().st_mtime_ns
    second = build_triton_repository(BuildRequest(onnx=onnx_model, out=tmp_path), TritonOptions())
    assert (first["version"], second["version"]) == (1, 2)
    assert served.stat().st_mtime_ns == before and (tmp_path / "ard" / "2" / "model.onnx").is_file()
    assert sorted(p.name for p in (tmp_path / "ard").iterdir()) == ["1", "2", "config.pbtxt"]  # no temporaries


def test_kind_gpu_with_tensorrt_here_writes_a_plan_for_the_tensorrt_backend(onnx_model, tmp_path, monkeypatch):
    """TensorRT cannot run here: a stand-in builder records what the Triton target asks of it."""
    import types

    import ard_edge.engines.tensorrt as tensorrt

    asked = {}

    def build(source, **options):
        asked.update(options, source=source)
        return types.SimpleNamespace(plan=b"serialized plan", environment={}, details={})

    monkeypatch.setattr(tensorrt, "build_serialized_engine", build, raising=False)
    written = build_triton_repository(BuildRequest(onnx=onnx_model, out=tmp_path, precision="fp16"),
                                      TritonOptions(kind="gpu"), probe=lambda: ({"gpu_name": "A2"}, "GPU A2"))
    assert (written["backend"], written["file"]) == ("tensorrt", "model.plan")
    assert (tmp_path / "ard" / "1" / "model.plan").read_bytes() == b"serialized plan"
    assert asked["precision"] == "fp16" and asked["batch"] == (1, 4, 8) and asked["source"] == onnx_model
    text = (tmp_path / "ard" / "config.pbtxt").read_text()
    assert 'backend: "tensorrt"' in text and "kind: KIND_GPU" in text and '\\"precision\\": \\"fp16\\"' in text


def test_what_cannot_be_served_is_refused_before_anything_is_written(onnx_model, tmp_path):
    from _models import with_fixed_batch

    fixed = with_fixed_batch(onnx_model, tmp_path / "fixed.onnx", 4)
    with pytest.raises(ConfigError, match="fixed batch.*--batch dynamic"):
        build_triton_repository(BuildRequest(onnx=fixed, out=tmp_path / "repo"), TritonOptions())
    with pytest.raises(ConfigError, match="fp16 needs TensorRT"):
        build_triton_repository(BuildRequest(onnx=onnx_model, out=tmp_path / "repo", precision="fp16"), TritonOptions())
    with pytest.raises(ConfigError, match="int8 needs a quantized ONNX or --calibration-data"):
        build_triton_repository(BuildRequest(onnx=onnx_model, out=tmp_path / "repo", precision="int8"), TritonOptions())
    with pytest.raises(ConfigError, match="--name"):
        build_triton_repository(BuildRequest(onnx=onnx_model, out=tmp_path / "repo"), TritonOptions(name="a/b"))
    assert not any((tmp_path / "repo").rglob("*.onnx"))


def test_build_engine_cli_writes_the_repository(onnx_model, tmp_path):
    done = subprocess.run([str(ARD_EDGE), "build-engine", "--target", "triton", "--onnx", str(onnx_model),
                           "--out", str(tmp_path / "repo"), "--name", "cam", "--batch", "1:2:4", "--instances", "3"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "onnxruntime backend" in done.stdout
    text = (tmp_path / "repo" / "cam" / "config.pbtxt").read_text()
    assert "max_batch_size: 4" in text and "count: 3" in text and "preferred_batch_size: [2, 4]" in text


# -- TritonEngine against the real server ----------------------------------------------------------


def test_served_model_matches_the_local_engine_on_real_frames(server, onnx_model):
    frames = brick_frames(6)
    with open_engine(f"triton://{server.grpc_url}/ard") as remote, open_engine(onnx_model) as local:
        assert (remote.input_spec.height, remote.input_spec.width, remote.input_spec.channels) == (64, 64, 1)
        assert remote.input_spec.max_batch == 8 and remote.threshold == local.threshold
        assert str(remote.path) == f"triton://{server.grpc_url}/ard/1"  # pinned to the version served at open
        assert remote.metadata["checkpoint_sha256"] == local.metadata["checkpoint_sha256"]
        for batch in (frames[:1], frames[1:6]):
            served, here = remote.infer(batch), local.infer(batch)
            np.testing.assert_allclose(served.anomaly_map, here.anomaly_map, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(served.score, here.score, rtol=1e-5)
            np.testing.assert_array_equal(served.is_anomalous, here.is_anomalous)
            assert served.is_anomalous.dtype == bool and served.score.shape == (len(batch),)


def test_http_protocol_gives_the_same_result(server):
    frames = brick_frames(2)
    with open_engine(f"triton+http://{server.http_url}/ard") as http, open_engine(f"triton://{server.grpc_url}/ard") as grpc:
        np.testing.assert_array_equal(http.infer(frames).score, grpc.infer(frames).score)


def test_concurrent_clients_are_batched_by_the_server(server, onnx_model):
    frames = brick_frames(8)
    with open_engine(onnx_model) as local:
        expected = local.infer(frames).score
    url = f"triton://{server.grpc_url}/ard"
    with open_engine(url) as probe:
        before = probe.server_batch_sizes()
    scores: dict[int, list[float]] = {}
    barrier = threading.Barrier(len(frames))

    def client(index: int) -> None:
        with open_engine(url) as engine:
            barrier.wait()
            scores[index] = [float(engine.infer(frames[index:index + 1]).score[0]) for _ in range(6)]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(frames))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # Each client got its own frame's result back out of the shared batches.
    for index, got in scores.items():
        np.testing.assert_allclose(got, [expected[index]] * 6, rtol=1e-5)
    assert len(scores) == len(frames)
    with open_engine(url) as probe:
        after = probe.server_batch_sizes()
    grew = {size: after.get(size, 0) - before.get(size, 0) for size in after}
    assert any(size > 1 and count > 0 for size, count in grew.items()), grew


def test_wrong_frames_are_refused_with_the_served_shape(server):
    with open_engine(f"triton://{server.grpc_url}/ard") as engine:
        with pytest.raises(EngineError, match="engine expects 64x64 frames, got 32x32"):
            engine.infer(np.zeros((1, 32, 32, 1), np.uint8))
        with pytest.raises(EngineError, match="outside this engine's range 1..8"):
            engine.infer(np.zeros((9, 64, 64, 1), np.uint8))


def test_a_model_the_server_has_not_loaded_is_named(server):
    with pytest.raises(EngineError, match=r"model .nope. is not loaded .*\(it has ard/1: READY\)"):
        open_engine(f"triton://{server.grpc_url}/nope")


def test_no_server_at_the_address_is_one_clear_error():
    from ard_edge.deploy.triton_server import free_port

    with pytest.raises(EngineError, match=r"unreachable .*start it or check the address"):
        open_engine(f"triton://127.0.0.1:{free_port()}/ard", timeout_s=2.0)


def test_a_server_that_does_not_answer_times_out():
    with socket.socket() as silent:  # accepts the connection, never speaks HTTP/2
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        start = time.monotonic()
        with pytest.raises(EngineError, match=r"did not answer is_server_ready within 0.5 s"):
            open_engine(f"triton://127.0.0.1:{silent.getsockname()[1]}/ard", timeout_s=0.5)
        assert time.monotonic() - start < 10


def test_a_server_whose_model_failed_to_load_is_not_ready(tmp_path):
    broken = tmp_path / "repo" / "broken"
    (broken / "1").mkdir(parents=True)
    (broken / "1" / "model.py").write_text("raise RuntimeError('this model cannot load')\n")
    (broken / "config.pbtxt").write_text('backend: "python"\nmax_batch_size: 1\n'
                                         'input { name: "x" data_type: TYPE_FP32 dims: [1] }\n'
                                         'output { name: "y" data_type: TYPE_FP32 dims: [1] }\n')
    server = LocalTritonServer(tmp_path / "repo", extra_args=["--exit-on-error=false"])
    try:
        server.start(wait="live")
        with pytest.raises(EngineError, match="up but not ready"):
            open_engine(f"triton://{server.grpc_url}/broken")
    finally:
        server.close()


# -- run and bench through Triton ------------------------------------------------------------------


class _Verdicts(Sink):
    """Records every verdict in order."""

    def __init__(self):
        self.verdicts: list[str] = []

    def on_decision(self, decision, frame, result) -> None:
        self.verdicts.append(decision.verdict)


def _viky(serial: str) -> CameraConfig:
    return CameraConfig(producer=VIKY, serial=serial, pixel_format="Mono8", width=128, height=100, frame_rate=30.0)


@pytest.mark.skipif(VIKY is None, reason="the installed genicam package has no viky.cti")
def test_run_on_the_viky_simulator_through_triton_accounts_for_every_frame(server, tmp_path):
    (tmp_path / "ard-edge.yaml").write_text(
        "cameras:\n  cam0:\n    simulator: true\n    serial: \"1\"\n    pixel_format: Mono8\n"
        "    width: 128\n    height: 100\n    frame_rate: 30\nruntime:\n  min_free_disk_mb: 0\n")
    env = {k: v for k, v in os.environ.items() if k != "GENICAM_GENTL64_PATH"}
    done = subprocess.run([str(ARD_EDGE), "run", "--camera", "cam0", "--engine", f"triton://{server.grpc_url}/ard",
                           "--max-frames", "40", "--out", "out"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames_captured"] == 40 and summary["lost"] == 0
    assert sum(summary["decisions"].values()) + summary["dropped"] == 40
    assert summary["decisions"]["ERROR"] == 0 and summary["engine"].startswith("triton:fp32:ard/1@")
    assert summary["engine_stats"]["calls"] >= 1 and summary["engine_stats"]["disconnects"] == 0
    lines = (tmp_path / "out" / "decisions.jsonl").read_text().splitlines()
    assert len(lines) == sum(summary["decisions"].values())


@pytest.mark.skipif(VIKY is None, reason="the installed genicam package has no viky.cti")
def test_a_server_killed_mid_run_gives_error_decisions_then_recovers(onnx_model, tmp_path):
    from ard_edge.runtime import Pipeline

    server = LocalTritonServer(served_repository(onnx_model, tmp_path / "repo"))
    verdicts = _Verdicts()
    try:
        server.start()
        with open_engine(f"triton://{server.grpc_url}/ard", timeout_s=2.0) as engine:
            pipeline = Pipeline(GenICamCamera(_viky("1"), name="cam0"), engine,
                                RuntimeConfig(batch=1, max_wait_ms=0.0), [verdicts], duration_s=120)
            pipeline.start()
            _wait_for(lambda: len(verdicts.verdicts) >= 10)
            server.kill()
            _wait_for(lambda: verdicts.verdicts.count("ERROR") >= 5)
            server.start()  # the same ports: the engine's address still holds
            _wait_for(lambda: "ERROR" not in verdicts.verdicts[-10:])  # ten engine decisions in a row again
            pipeline.stop()
            summary = pipeline.join()
    finally:
        server.close()
    first_error = verdicts.verdicts.index("ERROR")
    assert "ERROR" not in verdicts.verdicts[:first_error]
    assert summary.lost == 0 and summary.frames_captured == sum(summary.decisions.values()) + summary.dropped
    assert summary.decisions["ERROR"] >= 5 and summary.decisions["ERROR"] == verdicts.verdicts.count("ERROR")
    assert summary.engine_stats["disconnects"] >= 1 and summary.engine_stats["reconnects"] >= 1


def _wait_for(condition, timeout_s: float = 60.0) -> None:
    deadline_s = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline_s, "timed out waiting for the run"
        time.sleep(0.05)


def test_predict_through_triton_scores_image_files_like_the_local_engine(server, onnx_model, tmp_path):
    for index, frame in enumerate(brick_frames(3)):
        cv2.imwrite(str(tmp_path / f"{index}.png"), frame[..., 0])
    scores = {}
    for label, engine in (("triton", f"triton://{server.grpc_url}/ard"), ("local", str(onnx_model))):
        done = subprocess.run([str(ARD_EDGE), "predict", "--engine", engine, "--out", str(tmp_path / label),
                               *(str(p) for p in sorted(tmp_path.glob("*.png")))], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        rows = [json.loads(line) for line in (tmp_path / label / "predictions.jsonl").read_text().splitlines()]
        scores[label] = [row["score"] for row in rows]
    np.testing.assert_allclose(scores["triton"], scores["local"], rtol=1e-5)


def test_bench_runs_the_local_engine_and_triton_interleaved(server, onnx_model, tmp_path):
    done = subprocess.run([str(ARD_EDGE), "bench", "--engine", str(onnx_model), "--engine",
                           f"triton://{server.grpc_url}/ard", "--batch", "1", "--iterations", "5", "--warmup", "1",
                           "--json", str(tmp_path / "bench.json")], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "bench.json").read_text())
    backends = {engine["backend"] for engine in report["engines"]} if "engines" in report else set()
    assert "triton" in json.dumps(report) and (not backends or backends == {"onnxruntime", "triton"})
