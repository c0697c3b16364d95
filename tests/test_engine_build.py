"""build-engine on the CPU: option parsing, the ONNX Runtime target end to end, sidecars, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _models import exported_onnx, quantized_qdq, random_frames, tensorrt_importable, with_fixed_batch

from ard_edge._io import sha256_file
from ard_edge.engines import open_engine
from ard_edge.cli.engine_cmds import parse_batch_range, parse_size
from ard_edge.deploy.build import BuildRequest, build_engine, choose_target
from ard_edge.engines.base import BatchRange, BuildProgress
from ard_edge.engines.metadata import read_onnx_metadata
from ard_edge.engines.onnx_graph import is_qdq
from ard_edge.engines.sidecar import (
    FORMAT,
    check_compatible,
    read_sidecar,
    rebuild_command,
    sidecar_path,
    write_sidecar,
)
from ard_edge.errors import AccuracyGateRefused, CalibrationError, ConfigError, EngineError, MissingDependency

NO_TENSORRT = (None, "tensorrt is not installed")


def cpu_only():
    return NO_TENSORRT


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory) -> Path:
    return exported_onnx(tmp_path_factory)


@pytest.fixture(scope="session")
def qdq_model(onnx_model, tmp_path_factory) -> Path:
    return quantized_qdq(onnx_model, tmp_path_factory.mktemp("qdq") / "m_qdq.onnx", random_frames(2))


def request(onnx, out, **kwargs) -> BuildRequest:
    return BuildRequest(onnx=Path(onnx), out=Path(out), **{"target": "onnxruntime", **kwargs})


# --- option parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [("1:4:8", (1, 4, 8)), ("4", (4, 4, 4)), (" 2:2:2 ", (2, 2, 2)), ("1:1:16", (1, 1, 16))],
)
def test_parse_batch_range(text, expected):
    assert parse_batch_range(text).as_tuple() == expected
    assert str(parse_batch_range(text)) == ":".join(map(str, expected))


@pytest.mark.parametrize(
    "text, message",
    [
        ("4:2:1", "MIN <= OPT <= MAX"),
        ("1:8:4", "MIN <= OPT <= MAX"),
        ("0:1:2", "start at 1"),
        ("1:2", "MIN:OPT:MAX"),
        ("1:2:3:4", "MIN:OPT:MAX"),
        ("a:b:c", "MIN:OPT:MAX"),
        ("", "MIN:OPT:MAX"),
        ("-1:1:1", "MIN:OPT:MAX"),
    ],
)
def test_parse_batch_range_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_batch_range(text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1G", 1 << 30),
        ("512M", 512 << 20),
        ("1.5G", 3 << 29),
        ("2GiB", 2 << 30),
        ("256MB", 256 << 20),
        ("64k", 64 << 10),
        ("4096", 4096),
        ("1T", 1 << 40),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "G", "-1G", "1X", "1.2.3G", "0", "one gig", "1 G B"])
def test_parse_size_errors(text):
    with pytest.raises(ConfigError, match="--workspace"):
        parse_size(text)


# --- target choice -------------------------------------------------------------------------


def test_auto_target_without_tensorrt_or_openvino_picks_onnxruntime_and_says_why():
    no_openvino = lambda: (None, "openvino is not installed")  # noqa: E731
    assert choose_target("auto", cpu_only, no_openvino) == (
        "onnxruntime", "auto: tensorrt is not installed; openvino is not installed")


def test_auto_target_with_a_gpu_picks_tensorrt():
    environment = {"tensorrt_version": "10.3.0", "gpu_name": "NVIDIA L4", "compute_capability": "8.9"}
    target, reason = choose_target("auto", lambda: (environment, "NVIDIA L4, TensorRT 10.3.0"))
    assert target == "tensorrt" and "NVIDIA L4" in reason


def test_explicit_targets():
    def never():
        raise AssertionError("the onnxruntime target must not probe for TensorRT")

    assert choose_target("onnxruntime", never) == ("onnxruntime", "requested")
    with pytest.raises(MissingDependency, match="tensorrt"):
        choose_target("tensorrt", cpu_only)
    with pytest.raises(EngineError, match="no NVIDIA GPU"):
        choose_target("tensorrt", lambda: (None, "no NVIDIA GPU found"))
    with pytest.raises(ConfigError, match="--target"):
        choose_target("cuda", cpu_only)


# --- Q/DQ detection ------------------------------------------------------------------------


def tiny_qdq_model():
    import onnx
    from onnx import TensorProto, helper

    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [0.1])
    zero = helper.make_tensor("zero", TensorProto.INT8, [], [0])
    graph = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"], name="quantize"),
            helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"], name="dequantize"),
        ],
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[scale, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_qdq_detection(onnx_model, qdq_model):
    import onnx

    assert is_qdq(tiny_qdq_model())
    assert not is_qdq(onnx.load(str(onnx_model)))
    assert is_qdq(onnx.load(str(qdq_model)))


# --- ONNX Runtime target end to end --------------------------------------------------------


class Recorder(BuildProgress):
    def __init__(self):
        self.events = []

    def phase_start(self, name, parent, num_steps):
        self.events.append(("start", name, num_steps))

    def step(self, name, step):
        self.events.append(("step", name, step))
        return True

    def phase_finish(self, name):
        self.events.append(("finish", name))


def test_onnxruntime_target_end_to_end(onnx_model, tmp_path):
    out = tmp_path / "engines" / "m.engine"
    progress = Recorder()
    sidecar = build_engine(request(onnx_model, out, batch=BatchRange(1, 2, 4)), progress=progress, probe=cpu_only)

    assert out.is_file() and sidecar_path(out).is_file()
    assert [e[0] for e in progress.events] == ["start", "step", "step", "finish"]
    assert read_sidecar(out) == json.loads(json.dumps(sidecar))
    assert sidecar["format"] == FORMAT and sidecar["backend"] == "onnxruntime" and sidecar["precision"] == "fp32"
    assert sidecar["batch"] == {"min": 1, "opt": 2, "max": 4}
    assert sidecar["onnx"] == {"path": str(onnx_model), "sha256": sha256_file(onnx_model)}
    assert sidecar["engine"] == {"bytes": out.stat().st_size, "sha256": sha256_file(out)}
    assert sidecar["metadata"] == dict(read_onnx_metadata(onnx_model), precision="fp32")
    assert sidecar["build"]["ard_edge_version"] and sidecar["build"]["time_s"] >= 0
    assert sidecar["build"]["target_reason"] == "requested"

    frames = random_frames(3)
    with open_engine(out) as engine, open_engine(onnx_model) as plain:
        assert engine.backend == "onnxruntime" and engine.metadata["threshold"] == 1.0
        got, want = engine.infer(frames), plain.infer(frames)
    np.testing.assert_allclose(got.anomaly_map, want.anomaly_map, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(got.score, want.score, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(got.normalized_score, want.normalized_score, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(got.is_anomalous, want.is_anomalous)


def test_fixed_batch_export(onnx_model, tmp_path):
    fixed = with_fixed_batch(onnx_model, tmp_path / "fixed2.onnx", 2)
    out = tmp_path / "out" / "fixed.engine"
    with pytest.raises(ConfigError, match="fixed batch of 2"):
        build_engine(request(fixed, out, batch=BatchRange(1, 2, 4)), probe=cpu_only)
    assert not out.parent.exists() or not any(out.parent.iterdir())
    sidecar = build_engine(request(fixed, out), probe=cpu_only)  # the export's batch by default
    assert sidecar["batch"] == {"min": 2, "opt": 2, "max": 2}
    with open_engine(out) as engine:
        assert engine.input_spec.fixed_batch == 2
        assert len(engine.infer(random_frames(2))) == 2


def test_int8_needs_calibration_data_or_a_qdq_model(onnx_model, qdq_model, tmp_path):
    with pytest.raises(ConfigError, match="--calibration-data"):
        build_engine(request(onnx_model, tmp_path / "a.engine", precision="int8"), probe=cpu_only)
    with pytest.raises(ConfigError, match="quantized"):
        build_engine(request(qdq_model, tmp_path / "b.engine", precision="fp32"), probe=cpu_only)
    assert list(tmp_path.iterdir()) == []


def test_int8_from_a_qdq_model_builds_directly(qdq_model, tmp_path):
    out = tmp_path / "m_int8.engine"
    sidecar = build_engine(request(qdq_model, out, precision="int8"), probe=cpu_only)
    assert sidecar["precision"] == "int8" and sidecar["calibration"] is None
    with open_engine(out) as engine:
        assert engine.name == "onnxruntime:int8:m_int8.engine"
        result = engine.infer(random_frames(2))
    assert np.isfinite(result.anomaly_map).all()


def test_int8_calibrates_an_fp32_model_first(onnx_model, tmp_path, monkeypatch):
    import ard_edge.deploy.build

    calls = []

    def calibrate_onnx(onnx_path, data_dir, out_path, **kwargs):
        calls.append((Path(onnx_path), Path(data_dir), kwargs))
        quantized_qdq(Path(onnx_path), Path(out_path), random_frames(2))
        return {"method": "percentile", "auroc_drop": 0.0, "agreement": 1.0}

    monkeypatch.setattr(ard_edge.deploy.build, "calibrate_onnx", calibrate_onnx)
    images = tmp_path / "good"
    images.mkdir()
    out = tmp_path / "m_int8.engine"
    req = request(onnx_model, out, precision="int8", calibration_data=images, max_auroc_drop=0.02, min_agreement=0.95)
    sidecar = build_engine(req, probe=cpu_only)

    (onnx_path, data_dir, kwargs), = calls
    assert (onnx_path, data_dir) == (onnx_model, images)
    assert kwargs == {
        "profile": "cpu",
        "num_images": 256,
        "max_auroc_drop": 0.02,
        "min_agreement": 0.95,
        "progress": None,
    }
    assert sidecar["calibration"] == {"method": "percentile", "auroc_drop": 0.0, "agreement": 1.0}
    assert sidecar["options"]["calibration_data"] == str(images)
    assert "--calibration-data" in rebuild_command(sidecar, out)
    with open_engine(out) as engine:
        assert engine.metadata["precision"] == "int8"
        engine.infer(random_frames(1))


def test_refused_calibration_writes_nothing_and_exits_3(onnx_model, tmp_path, monkeypatch, capsys):
    import ard_edge.deploy.build

    report = {
        "quantization": {"profile": "cpu", "activation_type": "uint8", "weight_type": "int8", "method": "percentile"},
        "ranges": {"source": "calibrated", "num_images": 4},
        "gate": {"status": "refused", "num_images": 4, "num_good": 4, "num_defective": 0, "decision_agreement": 0.5,
                 "min_agreement": 0.99, "score_pearson": None, "max_abs_score_diff": 0.1, "image_auroc_fp32": None,
                 "image_auroc_int8": None, "auroc_drop": 0.05, "max_auroc_drop": 0.01},
    }

    def refuse(*args, **kwargs):
        raise AccuracyGateRefused("accuracy gate refused the INT8 model: image AUROC drops by 0.05", report)

    monkeypatch.setattr(ard_edge.deploy.build, "calibrate_onnx", refuse)
    (tmp_path / "good").mkdir()
    out = tmp_path / "engines" / "m.engine"
    with pytest.raises(CalibrationError, match="AUROC"):
        build_engine(request(onnx_model, out, precision="int8", calibration_data=tmp_path / "good"), probe=cpu_only)
    assert not out.exists() and not sidecar_path(out).exists()
    # Its own exit status, so that a script (scripts/demo.sh) can fall back to FP32.
    code, _, stderr = run_cli(["--onnx", onnx_model, "--out", out, "--target", "onnxruntime", "--precision", "int8",
                               "--calibration-data", tmp_path / "good"], capsys)
    assert code == 3 and stderr.strip().splitlines()[-1].startswith("error: accuracy gate refused")
    assert "accuracy gate: REFUSED" in stderr  # the report comes with the error
    assert not out.exists()


def test_fp16_is_refused_on_the_onnxruntime_target(onnx_model, tmp_path):
    with pytest.raises(ConfigError, match="fp16 needs the TensorRT or OpenVINO target"):
        build_engine(request(onnx_model, tmp_path / "m.engine", precision="fp16"), probe=cpu_only)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"precision": "fp8"}, "--precision"),
        ({"out": "m.onnx"}, ".engine or .plan"),
        ({"onnx": "missing.onnx"}, "no such file"),
        ({"dla_core": 0}, "DLA cores do not run float32"),
        ({"dla_core": -1, "precision": "fp16"}, "numbered from 0"),
        ({"workspace_bytes": 0}, "--workspace"),
        ({"calibration_data": "nowhere", "precision": "int8"}, "no such directory"),
    ],
)
def test_bad_requests(onnx_model, tmp_path, kwargs, message):
    fields = {"onnx": onnx_model, "out": tmp_path / "m.engine", **kwargs}
    fields = {k: Path(tmp_path / v) if k in ("onnx", "out", "calibration_data") and isinstance(v, str) else v for k, v in fields.items()}
    with pytest.raises(ConfigError, match=message):
        build_engine(BuildRequest(target="onnxruntime", **fields), probe=cpu_only)


def test_failing_build_leaves_no_file_and_keeps_the_old_engine(onnx_model, tmp_path):
    import onnx

    broken = onnx.load(str(onnx_model))
    next(n for n in broken.graph.node if n.op_type == "Conv").op_type = "NoSuchOp"
    broken_path = tmp_path / "broken.onnx"
    onnx.save(broken, str(broken_path))
    out = tmp_path / "engines" / "m.engine"
    with pytest.raises(EngineError, match="cannot optimize"):
        build_engine(request(broken_path, out), probe=cpu_only)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []

    build_engine(request(onnx_model, out), probe=cpu_only)
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    with pytest.raises(EngineError):
        build_engine(request(broken_path, out), probe=cpu_only)
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before  # no temp files either


# --- sidecars and compatibility --------------------------------------------------------------


def trt_sidecar(**environment):
    return {
        "format": FORMAT,
        "backend": "tensorrt",
        "precision": "fp16",
        "batch": {"min": 1, "opt": 2, "max": 4},
        "onnx": {"path": "export/demo.onnx", "sha256": "0" * 64},
        "environment": {"tensorrt_version": "10.3.0.26", "gpu_name": "NVIDIA L4", "compute_capability": "8.9", **environment},
        "options": {"workspace": "1G", "dla_core": None, "timing_cache": "engines/timing.cache", "calibration_data": None},
        "metadata": {"threshold": 1.0},
    }


HERE = {"tensorrt_version": "10.3.0.26", "gpu_name": "NVIDIA L4", "compute_capability": "8.9"}


def test_sidecar_roundtrip(tmp_path):
    engine = tmp_path / "demo.engine"
    engine.write_bytes(b"plan")
    path = write_sidecar(engine, trt_sidecar())
    assert path == tmp_path / "demo.engine.json"
    assert read_sidecar(engine) == trt_sidecar()


def test_sidecar_errors(tmp_path):
    engine = tmp_path / "demo.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(EngineError, match="no sidecar"):
        read_sidecar(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(EngineError, match="not a readable engine sidecar"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps({"backend": "tensorrt"}))
    with pytest.raises(EngineError, match="missing"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps({**trt_sidecar(), "format": "other/9"}))
    with pytest.raises(EngineError, match="sidecar format"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps({**trt_sidecar(), "backend": "coreml"}))
    with pytest.raises(EngineError, match="unknown backend"):
        read_sidecar(engine)
    no_gpu = trt_sidecar()
    del no_gpu["environment"]["gpu_name"]
    sidecar_path(engine).write_text(json.dumps(no_gpu))
    with pytest.raises(EngineError, match="gpu_name"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps({**trt_sidecar(), "engine": {"bytes": 999, "sha256": "x"}}))
    with pytest.raises(EngineError, match="do not belong together.*ard-edge build-engine"):
        read_sidecar(engine)


def test_compatible_environment_passes():
    check_compatible(trt_sidecar(), dict(HERE, cuda_driver_version=12040), "engines/demo.engine")
    onnxruntime = {**trt_sidecar(), "backend": "onnxruntime", "environment": {}}
    check_compatible(onnxruntime, {}, "engines/demo.engine")  # runs anywhere


EXPECTED_HINT = (
    "ard-edge build-engine --onnx export/demo.onnx --precision fp16 --out engines/demo.engine "
    "--target tensorrt --batch 1:2:4 --workspace 1G --timing-cache engines/timing.cache"
)


@pytest.mark.parametrize(
    "here, message",
    [
        (dict(HERE, tensorrt_version="10.4.0.26"), "built with TensorRT 10.3.0.26 but this machine has TensorRT 10.4.0.26"),
        (dict(HERE, tensorrt_version="8.6.1"), "TensorRT 8.6.1"),
        (dict(HERE, gpu_name="NVIDIA A2"), r"built for NVIDIA L4 \(compute capability 8.9\) but this machine has NVIDIA A2"),
        (dict(HERE, compute_capability="8.7"), "compute capability 8.7"),
        (dict(HERE, gpu_name="Orin", compute_capability="8.7"), "this machine has Orin"),
    ],
)
def test_foreign_engine_is_refused_with_the_rebuild_command(here, message):
    with pytest.raises(EngineError, match=message) as caught:
        check_compatible(trt_sidecar(), here, "engines/demo.engine")
    assert str(caught.value).endswith("rebuild it on this machine with: " + EXPECTED_HINT)


def test_rebuild_command_quotes_and_lists_dla():
    sidecar = trt_sidecar()
    sidecar["onnx"]["path"] = "my models/demo.onnx"
    sidecar["options"] = {"dla_core": 1}
    assert rebuild_command(sidecar, "engines/demo.engine") == (
        "ard-edge build-engine --onnx 'my models/demo.onnx' --precision fp16 --out engines/demo.engine "
        "--target tensorrt --batch 1:2:4 --dla 1"
    )


@pytest.mark.skipif(tensorrt_importable(), reason="checks the message shown without tensorrt")
def test_opening_a_tensorrt_engine_without_tensorrt_names_the_extra(tmp_path):
    engine = tmp_path / "demo.engine"
    engine.write_bytes(b"plan")
    write_sidecar(engine, trt_sidecar())
    with pytest.raises(MissingDependency, match=r"pip install 'ard-edge\[tensorrt\]'"):
        open_engine(engine)


# --- CLI ---------------------------------------------------------------------------------------


def run_cli(args, capsys) -> tuple[int, str, str]:
    from ard_edge.cli.main import main

    try:
        main(["build-engine", *map(str, args)])
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_builds_and_says_which_target(onnx_model, tmp_path, capsys):
    out = tmp_path / "engines" / "m.engine"
    code, stdout, _ = run_cli(["--onnx", onnx_model, "--out", out, "--target", "onnxruntime", "--batch", "1:2:4"], capsys)
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0] == "target: onnxruntime (requested)"
    assert lines[-1].startswith(f"wrote {out} (onnxruntime, fp32, batch 1:2:4")
    assert read_sidecar(out)["batch"] == {"min": 1, "opt": 2, "max": 4}


def test_cli_auto_target(onnx_model, tmp_path, capsys):
    expected = choose_target("auto")
    code, stdout, _ = run_cli(["--onnx", onnx_model, "--out", tmp_path / "m.engine", "--precision", "fp32"], capsys)
    assert code == 0
    assert stdout.splitlines()[0] == f"target: {expected[0]} ({expected[1]})"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch", "4:2:1"], "--batch '4:2:1'"),
        (["--workspace", "1X"], "--workspace '1X'"),
        (["--precision", "fp8"], "--precision 'fp8'"),
        (["--target", "cuda"], "--target 'cuda'"),
        (["--dla", "0"], "--dla needs"),
        (["--out", "m.onnx"], "--out"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(onnx_model, tmp_path, capsys, args, message):
    base = ["--onnx", onnx_model, "--out", tmp_path / "m.engine", "--target", "onnxruntime"]
    code, stdout, stderr = run_cli(base + args, capsys)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("error: ") and message in stderr
    assert not (tmp_path / "m.engine").exists()


def test_cli_missing_options_exit_2(capsys):
    code, _, stderr = run_cli([], capsys)
    assert code == 2 and stderr.strip() == "error: build-engine needs --onnx FILE and --out FILE (e.g. --out engines/NAME.engine)"


def test_installed_entry_point(onnx_model, tmp_path):
    out = tmp_path / "m.engine"
    env = dict(os.environ, OMP_NUM_THREADS="2")
    done = subprocess.run(
        [sys.executable, "-m", "ard_edge", "build-engine", "--onnx", str(onnx_model), "--out", str(out),
         "--target", "onnxruntime", "--precision", "fp16"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout.strip() == "target: onnxruntime (requested)"
    assert done.stderr.strip().count("\n") == 0 and "fp16 needs the TensorRT or OpenVINO target" in done.stderr
