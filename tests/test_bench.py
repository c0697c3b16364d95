"""``ard-edge bench``: statistics, interleaving, report formats, pipeline mode, CLI errors.

Nothing here asserts a timing value: the machine is shared, timing goals live in benchmark runs.
"""

import json
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ard_edge.bench import (
    SCHEMA_VERSION,
    BenchSettings,
    collect_environment,
    latency_stats,
    measure,
    plan_batches,
    random_frames,
    ratio,
    run_raw_bench,
    run_spread,
    throughput_ips,
)
from ard_edge.bench import _environment
from ard_edge.bench._raw import gpu_timings
from ard_edge.cli.main import main
from ard_edge.engines.base import OUTPUT_NAMES, Engine, InputSpec
from ard_edge.errors import ConfigError, EngineError
from ard_edge.export import export_onnx
from ard_edge.model import ARDModel, ModelConfig, build_teacher, save_checkpoint

torch.set_num_threads(1)

DOC = Path(__file__).resolve().parents[1] / "docs" / "bench-json.md"
PNG_HEADER = b"\x89PNG\r\n\x1a\n"


# -- a fake engine that records the order of its calls (real engines are tested elsewhere)


class RecordingEngine(Engine):
    backend = "fake"

    def __init__(self, name, calls, min_batch=1, max_batch=None, timings=None):
        super().__init__(Path(f"{name}.fake"), InputSpec(8, 8, 3, min_batch, max_batch), {"threshold": 1.0})
        self.tag = name
        self.calls = calls
        self.timings = timings
        self.frame_ids = set()

    def _infer_impl(self, frames):
        self.calls.append((self.tag, len(frames)))
        self.frame_ids.add((len(frames), id(frames)))
        if self.timings is not None:
            self.last_timings_ms = dict(self.timings)
        n = len(frames)
        return {
            OUTPUT_NAMES[0]: np.zeros((n, 1, 8, 8), np.float32),
            OUTPUT_NAMES[1]: np.zeros(n, np.float32),
            OUTPUT_NAMES[2]: np.zeros(n, np.float32),
            OUTPUT_NAMES[3]: np.zeros(n, bool),
        }


class GraphEngine(RecordingEngine):
    enabled = False

    def enable_cuda_graph(self):
        self.enabled = True


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    model = ARDModel(ModelConfig(backbone="efficientnet_lite0", image_size=64, distillation=True, bank_size=256), build_teacher("efficientnet_lite0")).eval()
    save_checkpoint(folder / "m.ckpt", model, {"threshold": 1.0, "score_stats": {"min": 0.0}, "normalization": {}})
    export_onnx(folder / "m.ckpt", folder / "m.onnx", channels=3, batch=None)
    export_onnx(folder / "m.ckpt", folder / "fixed1.onnx", channels=3, batch=1)
    return folder


@pytest.fixture(scope="module")
def cli_report(models, tmp_path_factory):
    """One real CLI run: ONNX Runtime and PyTorch, two batch sizes, every output."""
    out = tmp_path_factory.mktemp("report")
    argv = ["bench", "--engine", str(models / "m.onnx"), "--engine", str(models / "m.ckpt"),
            "--engine", str(models / "fixed1.onnx"), "--batch", "1,2", "--iterations", "3", "--warmup", "1",
            "--threads", "1", "--json", str(out / "r.json"), "--markdown", str(out / "r.md"),
            "--plot", str(out / "r.png")]
    main(argv)
    return out


# -- statistics on known samples


def test_latency_stats_on_known_samples():
    s = latency_stats([1.0, 2.0, 3.0, 4.0])
    assert (s.count, s.mean, s.min, s.max) == (4, 2.5, 1.0, 4.0)
    assert s.p50 == pytest.approx(2.5)
    assert s.p90 == pytest.approx(3.7)
    assert s.p99 == pytest.approx(3.97)
    assert s.std == pytest.approx(math.sqrt(5 / 3))
    assert s.cv == pytest.approx(math.sqrt(5 / 3) / 2.5)
    one = latency_stats([7.0])
    assert (one.p50, one.p99, one.std, one.cv) == (7.0, 7.0, 0.0, None)
    assert latency_stats([5.0, 5.0, 5.0]).cv == 0.0
    with pytest.raises(ValueError):
        latency_stats([])


def test_ratios_throughput_and_run_spread():
    assert ratio(2.0, 4.0) == 0.5
    assert ratio(None, 4.0) is None and ratio(1.0, 0.0) is None and ratio(1.0, None) is None
    assert throughput_ips(8, [10.0, 10.0, 20.0, 20.0]) == pytest.approx(8 * 4 * 1000 / 60)
    spread = run_spread([10.0, 12.0, 11.0])
    assert spread.runs == 3 and spread.p50_ms == (10.0, 12.0, 11.0)
    assert (spread.p50_ms_median, spread.p50_ms_min, spread.p50_ms_max) == (11.0, 10.0, 12.0)
    assert spread.p50_spread_pct == pytest.approx(200 / 11)


def test_report_ratios_against_the_first_engine():
    calls = []
    engines = [RecordingEngine("a", calls), RecordingEngine("b", calls)]
    report = run_raw_bench(engines, BenchSettings(batches=(1,), iterations=4, warmup=0))
    a, b = report.results
    # Replace the samples with known ones: b is twice as fast as a.
    a.samples_ms, b.samples_ms = np.array([4.0, 4.0, 4.0, 4.0]), np.array([2.0, 2.0, 2.0, 2.0])
    data = report.to_dict()["results"]
    assert data[0]["vs_first"] == {"baseline": "fake:fp32:a.fake", "throughput_ratio": 1.0, "p50_ratio": 1.0}
    assert data[1]["vs_first"]["throughput_ratio"] == pytest.approx(2.0)
    assert data[1]["vs_first"]["p50_ratio"] == pytest.approx(0.5)
    assert data[1]["throughput_ips"] == pytest.approx(500.0)


# -- interleaving, frames, batch policy


def test_engines_are_timed_interleaved_round_robin_with_frames_made_once():
    calls = []
    a, b = RecordingEngine("a", calls), RecordingEngine("b", calls)
    rounds = []
    results, skipped = measure([a, b], BenchSettings(batches=(1, 2), iterations=3, warmup=2, repeat=2),
                               on_round=lambda: rounds.append(1))
    block = lambda n: [("a", n)] * 2 + [("b", n)] * 2 + [("a", n), ("b", n)] * 3  # noqa: E731
    assert calls == (block(1) + block(2)) * 2
    assert len(rounds) == 3 * 2 * 2 and not skipped
    assert [(r.engine, r.batch, len(r.samples_ms), len(r.run_p50s_ms)) for r in results] == [
        ("fake:fp32:a.fake", 1, 6, 2), ("fake:fp32:b.fake", 1, 6, 2),
        ("fake:fp32:a.fake", 2, 6, 2), ("fake:fp32:b.fake", 2, 6, 2),
    ]
    # One frames array per batch size, shared by both engines and every iteration.
    assert {n for n, _ in a.frame_ids} == {1, 2} and len(a.frame_ids) == 2 and a.frame_ids == b.frame_ids
    np.testing.assert_array_equal(random_frames((2, 8, 8, 3), 0), random_frames((2, 8, 8, 3), 0))
    assert not np.array_equal(random_frames((2, 8, 8, 3), 0), random_frames((2, 8, 8, 3), 1))


def test_duration_bounds_each_batch_block():
    calls = []
    results, _ = measure([RecordingEngine("a", calls)], BenchSettings(batches=(1,), iterations=None, duration_s=0.05, warmup=0))
    assert len(results[0].samples_ms) >= 1


def test_batch_policy_errors_and_skips():
    calls = []
    fixed = RecordingEngine("fixed", calls, min_batch=1, max_batch=1)
    dynamic = RecordingEngine("dyn", calls)
    with pytest.raises(ConfigError, match=r"--batch 8 does not fit: fake:fp32:fixed.fake .*accepts fixed batch 1"):
        plan_batches([dynamic, fixed], [8])
    plan, skipped = plan_batches([dynamic, fixed], [1, 8])
    assert plan == {1: [0, 1], 8: [0]}
    assert [(s.engine, s.batch) for s in skipped] == [("fake:fp32:fixed.fake", 8)]
    with pytest.raises(ConfigError, match="--batch 4 does not fit"):
        plan_batches([fixed], [1, 4])
    ranged = RecordingEngine("r", calls, min_batch=2, max_batch=4)
    with pytest.raises(ConfigError, match=r"accepts batch 2\.\.4"):
        plan_batches([ranged], [1])


def test_settings_validation():
    with pytest.raises(ConfigError, match="either --iterations or --duration"):
        BenchSettings(iterations=5, duration_s=1.0).validate()
    with pytest.raises(ConfigError, match="--repeat"):
        BenchSettings(repeat=0).validate()
    with pytest.raises(ConfigError, match="repeat"):
        BenchSettings(batches=(1, 1)).validate()


# -- GPU timings and CUDA graphs (duck-typed; the real TensorRT engine needs a GPU)


def test_gpu_timings_in_trtexec_terms():
    calls = []
    parts = RecordingEngine("trt", calls, timings={"h2d_ms": 0.5, "compute_ms": 2.0, "d2h_ms": 0.25, "host_total_ms": 4.0})
    report = run_raw_bench([parts], BenchSettings(batches=(1,), iterations=3, warmup=1))
    gpu = report.to_dict()["results"][0]["gpu"]
    assert gpu["host_latency_ms"]["p50"] == pytest.approx(2.75)
    assert gpu["gpu_compute_ms"]["p50"] == pytest.approx(2.0)
    assert gpu["h2d_ms"]["count"] == 3 and gpu["d2h_ms"]["max"] == pytest.approx(0.25)
    whole = RecordingEngine("trt2", calls, timings={"host_ms": 3.0, "gpu_compute_ms": 2.5})
    whole.infer(np.zeros((1, 8, 8, 3), np.uint8))
    assert gpu_timings(whole) == {"host_latency_ms": 3.0, "gpu_compute_ms": 2.5}
    assert gpu_timings(RecordingEngine("cpu", calls)) is None
    header, rows = report.table_rows()
    assert header[-2:] == ["host latency p50 ms", "GPU compute p50 ms"] and rows[0][-2:] == ["2.75", "2.00"]


def test_cuda_graph_needs_an_engine_that_offers_it():
    calls = []
    with pytest.raises(EngineError, match=r"--cuda-graph: no CUDA-graph capture on fake:fp32:cpu.fake \(backend fake\)"):
        measure([RecordingEngine("cpu", calls)], BenchSettings(iterations=1, warmup=0, cuda_graph=True))
    graph = GraphEngine("g", calls)
    measure([graph], BenchSettings(iterations=1, warmup=0, cuda_graph=True))
    assert graph.enabled


# -- real engines through the CLI: table, JSON, markdown, plot


def test_cli_real_engines_write_every_output(cli_report, models, capsys):
    data = json.loads((cli_report / "r.json").read_text())
    assert data["schema"] == "ard-edge-bench" and data["schema_version"] == SCHEMA_VERSION
    assert [e["backend"] for e in data["engines"]] == ["onnxruntime", "torch", "onnxruntime"]
    assert data["engines"][0]["threads"] == 1 and data["engines"][1]["threads"] == 1
    assert [(r["engine_index"], r["batch"], r["iterations"]) for r in data["results"]] == [
        (0, 1, 3), (1, 1, 3), (2, 1, 3), (0, 2, 3), (1, 2, 3)
    ]
    assert data["skipped"] == [{"engine": "onnxruntime:fp32:fixed1.onnx", "engine_index": 2, "batch": 2,
                                "reason": "outside the engine's range (fixed batch 1)"}]
    assert all(r["latency_ms"]["p50"] > 0 and r["throughput_ips"] > 0 for r in data["results"])
    assert all(r["cpu_ms"]["count"] == r["iterations"] for r in data["results"])
    assert data["environment"]["cpu_affinity_count"] >= 1
    assert "--iterations 3 --warmup 1 --repeat 1" in data["command"]

    md = (cli_report / "r.md").read_text()
    assert "| engine | batch | iters | mean ms | p50 ms | p90 ms | p99 ms | max ms | CV | img/s |" in md
    # Engine 0 is the baseline: its ratios are 1.00x at every batch size.
    assert re.search(r"^\| onnxruntime:fp32:m\.onnx \| 2 \| 3 \|.*\| 1\.00x \| 1\.00x \| [0-9.]+ \|$", md, re.MULTILINE)
    assert re.search(r"^\| torch:fp32:m\.ckpt \| 1 \| 3 \|", md, re.MULTILINE)
    assert "### Noise handling" in md and "interleaved" in md and "skipped at batch 2" in md

    png = (cli_report / "r.png").read_bytes()
    assert png.startswith(PNG_HEADER) and len(png) < 200_000


def test_every_json_key_is_documented(cli_report):
    doc = DOC.read_text()
    data = json.loads((cli_report / "r.json").read_text())
    missing = sorted(key for key in _keys(data) if f"`{key}`" not in doc)
    assert not missing, f"keys missing from docs/bench-json.md: {missing}"
    assert set(data) == {"schema", "schema_version", "mode", "command", "settings", "environment", "noise",
                         "engines", "results", "pipeline", "skipped", "notes"}


def _keys(value, free_form=("describe", "runs")):
    """Every key in a JSON document, not descending into the documented free-form objects."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            if key not in free_form:
                yield from _keys(item, free_form)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item, free_form)


# -- pipeline mode: folder replay through the real runtime


def test_pipeline_mode_with_folder_replay(models, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no stray ./ard-edge.yaml
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(images / f"{i}.png"), rng.integers(0, 256, (48, 80, 3), dtype=np.uint8))
    out = tmp_path / "p.json"
    main(["bench", "--pipeline", "--camera", f"folder:{images}", "--engine", str(models / "m.onnx"),
          "--iterations", "5", "--warmup", "1", "--threads", "1", "--json", str(out), "--markdown", str(tmp_path / "p.md")])
    data = json.loads(out.read_text())
    assert data["mode"] == "pipeline" and data["results"] == []
    (entry,) = data["pipeline"]
    assert entry["camera"] == f"folder:{images}" and entry["frames_captured"] == 5
    assert sum(entry["decisions"].values()) + entry["dropped"] == 5
    assert entry["latency_ms"]["p50"] > 0 and entry["throughput_fps"] > 0
    assert entry["stop_reasons"] == ["max_frames"]
    assert "capture to decision" in (tmp_path / "p.md").read_text()
    doc = DOC.read_text()
    assert not sorted(k for k in _keys(data) if f"`{k}`" not in doc)


# -- CLI errors: one line, non-zero exit


def test_cli_bad_engine_file_is_one_line_exit_1(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    with pytest.raises(SystemExit) as info:
        main(["bench", "--engine", str(bad), "--iterations", "1"])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "bad.onnx" in err and "\n" not in err and "Traceback" not in err


def test_cli_unsupported_batch_is_one_line_exit_2(models, capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "--engine", str(models / "fixed1.onnx"), "--batch", "4", "--iterations", "1"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "--batch 4 does not fit: onnxruntime:fp32:fixed1.onnx" in err and "fixed batch 1" in err


def test_cli_usage_errors(models, capsys):
    for argv, message in [
        (["--iterations", "3", "--duration", "1"], "either --iterations or --duration"),
        (["--pipeline"], "--pipeline needs --camera"),
        (["--camera", "cam0"], "apply to --pipeline only"),
        (["--channels", "1"], "--channels applies to .ckpt engines only"),
        (["--batch", "1,x"], "comma-separated integers"),
    ]:
        with pytest.raises(SystemExit) as info:
            main(["bench", "--engine", str(models / "m.onnx"), *argv])
        assert info.value.code == 2, argv
        assert message in capsys.readouterr().err


# -- environment block


def test_environment_block(tmp_path, monkeypatch):
    env = collect_environment()
    assert env["cpu_logical_cores"] >= 1 and env["cpu_model"]
    assert env["gpu_summary"] == "none" or env["gpus"]
    assert env["versions"]["numpy"] == np.__version__
    # A Jetson without the nvpmodel tool: the status file names the mode id, the conf names it.
    status, conf = tmp_path / "status", tmp_path / "nvpmodel.conf"
    status.write_text("pmode:0002 fmode:quiet\n")
    conf.write_text("< POWER_MODEL ID=0 NAME=MAXN >\nCPU_ONLINE CORE_0 1\n< POWER_MODEL ID=2 NAME=15W >\n")
    monkeypatch.setattr(_environment, "NVPMODEL_STATUS", status)
    monkeypatch.setattr(_environment, "NVPMODEL_CONF", conf)
    monkeypatch.setattr(_environment.shutil, "which", lambda name: None)
    assert _environment.jetson_power_mode() == {"id": 2, "name": "15W", "source": str(status)}
    monkeypatch.setattr(_environment, "NVPMODEL_STATUS", tmp_path / "absent")
    assert _environment.jetson_power_mode() is None
