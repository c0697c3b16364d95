"""The OpenVINO backend: build, sidecar, parity with ONNX Runtime on real images, refusals, bench.

Real OpenVINO on this CPU throughout; nothing here asserts a timing (docs/openvino.md has them).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ard_edge.calibration._images import frame_from_file
from ard_edge.deploy import BuildRequest, build_engine, choose_target
from ard_edge.engines import open_engine
from ard_edge.errors import AccuracyGateRefused, ConfigError, EngineError

ov = pytest.importorskip("openvino")

ARD = [sys.executable, "-m", "ard_edge"]
BF16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def ard_edge(*args, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([*ARD, *map(str, args)], capture_output=True, text=True)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def _subset(source: Path, target: Path, good: int, per_type: int) -> Path:
    """A small MVTec-layout copy (symlinks) of ``source``: the first images of each folder."""
    for folder, count in [(Path("train/good"), good), (Path("test/good"), per_type)] + [
        (Path("test") / d.name, per_type) for d in sorted((source / "test").iterdir()) if d.name != "good"
    ]:
        (target / folder).mkdir(parents=True)
        for image in sorted((source / folder).iterdir())[:count]:
            (target / folder / image.name).symlink_to(image)
            if folder.parent.name == "test" and folder.name != "good":
                mask = Path("ground_truth") / folder.name / f"{image.stem}_mask.png"
                (target / mask.parent).mkdir(parents=True, exist_ok=True)
                (target / mask).symlink_to(source / mask)
    return target


@pytest.fixture(scope="module")
def real_model(magnetic_tile, tmp_path_factory):
    """The default heads (memory bank + Gaussian) on the small Lite0 teacher, fitted on magnetic-tile
    images at 64 px, exported."""
    root = tmp_path_factory.mktemp("openvino")
    data = _subset(magnetic_tile, root / "data", good=60, per_type=8)
    ard_edge("train", "--data", data, "--out", root / "run", "--backbone", "efficientnet_lite0", "--image-size", "64",
             "--bank-size", "500")
    ard_edge("export", "--model", root / "run" / "model.ckpt", "--out", root / "m.onnx", "--channels", "1",
             "--batch", "dynamic")
    return root, data


@pytest.fixture(scope="module")
def fp32_engine(real_model):
    root, _ = real_model
    out = root / "m.fp32.engine"
    done = ard_edge("build-engine", "--onnx", root / "m.onnx", "--out", out, "--target", "openvino", "--batch", "1:4:8")
    assert done.stdout.startswith("target: openvino (requested; OpenVINO ")
    return out


def _test_frames(data: Path) -> np.ndarray:
    paths = sorted(p for p in (data / "test").rglob("*.jpg"))
    return np.stack([frame_from_file(p, 64, 64, 1) for p in paths])


def _results(engine_path: Path, frames: np.ndarray):
    with open_engine(engine_path, threads=2) as engine:
        return [engine.infer(frames[i : i + 8]) for i in range(0, len(frames), 8)]


def _scores_and_decisions(results):
    return (np.concatenate([r.score for r in results]), np.concatenate([r.is_anomalous for r in results]))


def test_fp32_decisions_match_onnxruntime_on_real_images(real_model, fp32_engine):
    root, data = real_model
    frames = _test_frames(data)
    ov_scores, ov_decisions = _scores_and_decisions(_results(fp32_engine, frames))
    ort_scores, ort_decisions = _scores_and_decisions(_results(root / "m.onnx", frames))
    assert 0 < ort_decisions.sum() < len(frames)  # the comparison has both decisions in it
    assert np.array_equal(ov_decisions, ort_decisions)
    np.testing.assert_allclose(ov_scores, ort_scores, rtol=1e-4, atol=1e-4)


def test_sidecar_names_version_cpu_precision_and_weights(fp32_engine):
    sidecar = json.loads(fp32_engine.with_name(fp32_engine.name + ".json").read_text())
    assert sidecar["backend"] == "openvino" and sidecar["precision"] == "fp32"
    environment = sidecar["environment"]
    assert environment["openvino_version"] == ov.get_version()
    assert environment["device"] == "CPU" and environment["device_name"]
    assert "avx2" in environment["cpu_isa"] or environment["machine"] != "x86_64"
    # What the compiled model reported running, not what was asked for.
    assert sidecar["openvino"]["inference_precision"] == "f32"
    assert "f32" in sidecar["openvino"]["runtime_precisions"]
    assert sidecar["weights"]["file"] == fp32_engine.name + ".bin"
    assert sidecar["metadata"]["input"] and sidecar["batch"] == {"min": 1, "opt": 4, "max": 8}
    with open_engine(fp32_engine) as engine:
        assert engine.name == f"openvino:fp32:{fp32_engine.name}"
        assert engine.describe()["inference_precision"] == "f32"
        assert (engine.input_spec.min_batch, engine.input_spec.max_batch) == (1, 8)


def _build_gated(root: Path, data: Path, out: Path, precision: str, *options) -> subprocess.CompletedProcess:
    # Limits loose enough for 64 px and 8 images a type: what is tested is that the gate ran on this engine.
    return ard_edge("build-engine", "--onnx", root / "m.onnx", "--out", out, "--target", "openvino",
                    "--precision", precision, "--calibration-data", data, "--min-agreement", "0.8",
                    "--max-auroc-drop", "0.1", *options)


@pytest.mark.skipif(not BF16, reason="this CPU has no bf16 units")
def test_bf16_is_gated_and_runs_bf16(real_model, tmp_path):
    root, data = real_model
    out = tmp_path / "m.bf16.engine"
    done = _build_gated(root, data, out, "bf16", "--batch", "1:4:8")
    assert "accuracy gate: PASSED" in done.stdout and "image AUROC bf16" in done.stdout
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    assert sidecar["openvino"]["inference_precision"] == "bf16" and "bf16" in sidecar["openvino"]["runtime_precisions"]
    gate = sidecar["gate"]
    assert gate["candidate"] == "bf16" and gate["status"] == "passed" and gate["num_images"] > 0
    frames = _test_frames(data)
    _, bf16 = _scores_and_decisions(_results(out, frames))
    _, fp32 = _scores_and_decisions(_results(root / "m.onnx", frames))
    assert np.mean(bf16 == fp32) >= 0.8


@pytest.mark.skipif(not BF16, reason="this CPU has no bf16 units")
def test_mixed_runs_only_the_bank_search_in_bf16_behind_the_gate(real_model, tmp_path):
    root, data = real_model
    out = tmp_path / "m.mixed.engine"
    done = _build_gated(root, data, out, "mixed", "--batch", "1:4:8")
    assert "accuracy gate: PASSED (the mixed engine as built" in done.stdout
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    assert sidecar["precision"] == "mixed" and sidecar["gate"]["candidate"] == "mixed"
    assert sidecar["openvino"]["inference_precision"] == "f32"
    assert sidecar["environment"]["lowered"] == {"memory_bank_search": "bf16", "searches": 1}
    with open_engine(out) as engine:
        layers = [(op.get_rt_info()["layerType"].astype(str), op.get_rt_info()["runtimePrecision"].astype(str))
                  for op in engine._compiled.get_runtime_model().get_ordered_ops()]
    assert ("FullyConnected", "bf16") in layers  # the bank's MatMul
    assert {p for kind, p in layers if kind == "Convolution"} == {"f32"}  # the teacher is untouched
    frames = _test_frames(data)
    mixed, fp32 = (_scores_and_decisions(_results(path, frames)) for path in (out, root / "m.onnx"))
    assert np.mean(mixed[1] == fp32[1]) >= 0.95
    assert np.corrcoef(mixed[0], fp32[0])[0, 1] > 0.999
    shown = ard_edge("bench", "--engine", out, "--batch", "1", "--iterations", "1", "--warmup", "0").stdout
    assert re.search(r"openvino mixed \(runs f32, \d+ layers bf16\)", shown)


def test_mixed_needs_a_memory_bank(tmp_path):
    onnx_path = _without_bank(tmp_path / "nobank.onnx")
    build = BuildRequest(onnx=onnx_path, out=tmp_path / "m.engine", precision="mixed", target="openvino",
                         calibration_data=tmp_path)
    with pytest.raises(EngineError, match="has no memory bank: build it with --precision fp32 or bf16"):
        build_engine(build)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nobank.onnx"]  # nothing half-written


def _without_bank(dst: Path) -> Path:
    """A distillation and Gaussian model, exported: no memory bank."""
    from ard_edge.export import export_onnx
    from ard_edge.model import ARDModel, ModelConfig, build_teacher, save_checkpoint

    model = ARDModel(ModelConfig(backbone="efficientnet_lite0", image_size=64, distillation=True, bank_size=0), build_teacher("efficientnet_lite0"))
    checkpoint = dst.with_suffix(".ckpt")
    save_checkpoint(checkpoint, model.eval(), {"threshold": 1.0, "score_stats": {"min": 0.5}, "normalization": {}})
    export_onnx(checkpoint, dst, channels=1)
    checkpoint.unlink()
    return dst


def test_int8_builds_from_the_qdq_graph_behind_the_gate(real_model, tmp_path):
    root, data = real_model
    out = tmp_path / "m.int8.engine"
    done = _build_gated(root, data, out, "int8", "--calibration-images", "40")
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    assert sidecar["precision"] == "int8" and sidecar["calibration"]["gate"]["status"] == "passed"
    assert sidecar["gate"]["candidate"] == "int8" and sidecar["gate"]["status"] == "passed"
    assert done.stdout.count("accuracy gate: PASSED") == 2  # ONNX Runtime's Q/DQ graph, then this engine


def test_refused_gate_writes_nothing(real_model, tmp_path, monkeypatch):
    root, data = real_model

    def refuse(*args, **kwargs):
        raise AccuracyGateRefused("accuracy gate refused the bf16 engine: test", {"gate": {}})

    monkeypatch.setattr("ard_edge.calibration.gate_engine", refuse)
    out = tmp_path / "m.engine"
    with pytest.raises(AccuracyGateRefused):
        build_engine(BuildRequest(onnx=root / "m.onnx", out=out, precision="fp16", target="openvino",
                                  calibration_data=data))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_precision_changes_need_images_and_the_right_target(real_model, tmp_path):
    root, _ = real_model
    with pytest.raises(ConfigError, match="pass --calibration-data DIR"):
        build_engine(BuildRequest(onnx=root / "m.onnx", out=tmp_path / "m.engine", precision="bf16", target="openvino"))
    with pytest.raises(ConfigError, match="--precision bf16 needs --target openvino"):
        build_engine(BuildRequest(onnx=root / "m.onnx", out=tmp_path / "m.engine", precision="bf16",
                                  target="onnxruntime"))
    assert not list(tmp_path.iterdir())


def _copy_engine(engine: Path, folder: Path) -> Path:
    for suffix in ("", ".bin", ".json"):
        (folder / (engine.name + suffix)).write_bytes(engine.with_name(engine.name + suffix).read_bytes())
    return folder / engine.name


def _one_line_error(args) -> str:
    done = ard_edge(*args, check=False)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_corrupt_ir_is_refused_with_one_line(fp32_engine, tmp_path):
    engine = _copy_engine(fp32_engine, tmp_path)
    xml = engine.read_bytes()
    engine.write_bytes(xml[: len(xml) // 2])  # a truncated copy: the sidecar's hash catches it
    line = _one_line_error(["bench", "--engine", engine, "--iterations", "1"])
    assert line.startswith("error: ") and "do not belong together" in line
    # The same corruption with a sidecar that vouches for it: OpenVINO itself refuses the XML.
    sidecar_path = engine.with_name(engine.name + ".json")
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["engine"] = {"bytes": None, "sha256": None}
    sidecar_path.write_text(json.dumps(sidecar))
    line = _one_line_error(["bench", "--engine", engine, "--iterations", "1"])
    assert "is not a runnable OpenVINO IR" in line and "build-engine --target openvino" in line


def test_engine_from_a_newer_openvino_is_refused_with_the_rebuild_command(fp32_engine, tmp_path):
    engine = _copy_engine(fp32_engine, tmp_path)
    sidecar_path = engine.with_name(engine.name + ".json")
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["environment"]["openvino_version"] = "2999.1.0-1-abc"
    sidecar_path.write_text(json.dumps(sidecar))
    with pytest.raises(EngineError, match=r"built with OpenVINO 2999\.1\.0.*rebuild it .*--target openvino"):
        open_engine(engine)


def test_missing_weights_are_named(fp32_engine, tmp_path):
    engine = _copy_engine(fp32_engine, tmp_path)
    engine.with_name(engine.name + ".bin").unlink()
    with pytest.raises(EngineError, match=r"\.engine\.bin, which is missing"):
        open_engine(engine)


def test_bench_runs_three_backends_in_one_run(real_model, fp32_engine, tmp_path):
    root, _ = real_model
    out = tmp_path / "r.json"
    done = ard_edge("bench", "--engine", root / "m.onnx", "--engine", fp32_engine, "--engine",
                    root / "run" / "model.ckpt", "--channels", "1", "--batch", "1,2", "--iterations", "3",
                    "--warmup", "1", "--threads", "1", "--json", out)
    report = json.loads(out.read_text())
    assert [e["backend"] for e in report["engines"]] == ["onnxruntime", "openvino", "torch"]
    assert {(r["engine_index"], r["batch"]) for r in report["results"]} == {(i, b) for i in range(3) for b in (1, 2)}
    assert report["environment"]["versions"]["openvino"] == importlib.metadata.version("openvino")
    assert report["engines"][1]["threads"] == 1
    assert "openvino fp32 (runs f32)" in done.stdout


def test_auto_target_order():
    gpu = ({"gpu_name": "NVIDIA L4"}, "NVIDIA L4, TensorRT 10.3.0")
    cpu = ({"device": "CPU"}, "OpenVINO 2026.4.1 on Intel(R) Xeon(R)")
    none_trt = (None, "tensorrt is not installed")
    none_ov = (None, "openvino is not installed")
    assert choose_target("auto", lambda: gpu, lambda: cpu) == ("tensorrt", "auto: NVIDIA L4, TensorRT 10.3.0")
    assert choose_target("auto", lambda: none_trt, lambda: cpu) == (
        "openvino", "auto: tensorrt is not installed; OpenVINO 2026.4.1 on Intel(R) Xeon(R)")
    assert choose_target("auto", lambda: none_trt, lambda: none_ov) == (
        "onnxruntime", "auto: tensorrt is not installed; openvino is not installed")
    assert choose_target("openvino", lambda: none_trt, lambda: cpu)[0] == "openvino"
