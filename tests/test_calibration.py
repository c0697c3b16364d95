"""INT8 calibration: Q/DQ structure per profile, the float tail, the accuracy gate, the ranges cache, the CLI.

Real ONNX Runtime and its real quantizer throughout. One model is trained (64 px, 4 epochs) and
calibrated once with images; every other test reuses its ranges cache, which needs no images.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ard_edge.calibration import (
    PROFILES,
    calibrate_onnx,
    ranges_path_for,
    read_ranges,
    report_path_for,
    tensorrt_violations,
)
from ard_edge.calibration._quantize import collect_ranges, entropy_range, prepare_model
from ard_edge.engines.metadata import load_onnx, read_onnx_metadata
from ard_edge.engines.onnx_graph import is_qdq, split_graph
from ard_edge.errors import AccuracyGateRefused, CalibrationError, ConfigError, DataError, EngineError

ARD_EDGE = Path(sys.executable).with_name("ard-edge")
SIZE = 64


def _run(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(ARD_EDGE), *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env=None if env is None else {**os.environ, **env})


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(FP32 ONNX, dataset) of a model that detects the synthetic dataset's 'missing' defects.

    The other defect types (thin scratches, faint stains) need more than 4 epochs at 64 px; with
    them the FP32 AUROC sits near 0.5 and an AUROC gate would compare noise.
    """
    from ard_edge.export import export_onnx

    tmp = tmp_path_factory.mktemp("trained")
    data, run = tmp / "data", tmp / "run"
    done = _run("synth", str(data), "--num-train", "32", "--num-test", "40", "--image-size", str(SIZE),
                "--texture", "gravel")
    assert done.returncode == 0, done.stderr
    for defect in ("scratch", "spot", "stain"):
        shutil.rmtree(data / "test" / defect)
        shutil.rmtree(data / "ground_truth" / defect)
    # One torch thread: on shared cores two threads can make this 64 px run ten times slower.
    done = _run("train", "--data", str(data), "--out", str(run), "--backbone", "efficientnet_lite0",
                "--image-size", str(SIZE), "--epochs", "4", "--distillation", "--batch-size", "8",
                env={"OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    export_onnx(run / "model.ckpt", tmp / "model.onnx", channels=3, batch=None)
    return tmp / "model.onnx", data


@pytest.fixture(scope="session")
def calibrated(trained, tmp_path_factory) -> tuple[Path, dict, list]:
    """The cpu profile calibrated on images, gate run: (INT8 model, report, progress calls)."""
    onnx_path, data = trained
    out = tmp_path_factory.mktemp("calibrated") / "model.int8.onnx"
    calls = []
    # 31 gate images of a 4-epoch model whose threshold sits among the good scores: one flipped
    # decision is 3.2%, hence the looser limits (the defaults are for real validation sets).
    report = calibrate_onnx(onnx_path, data, out, profile="cpu", method="percentile",
                            max_auroc_drop=0.05, min_agreement=0.85, progress=lambda *a: calls.append(a))
    return out, report, calls


@pytest.fixture(scope="session")
def tensorrt_model(trained, calibrated, tmp_path_factory) -> tuple[Path, dict]:
    """The tensorrt profile built from the cpu run's ranges (ranges do not depend on the profile)."""
    out = tmp_path_factory.mktemp("tensorrt") / "model.int8.onnx"
    report = calibrate_onnx(trained[0], None, out, profile="tensorrt", method="percentile",
                            ranges_path=ranges_path_for(calibrated[0]))
    return out, report


def _constants(model) -> dict[str, np.ndarray]:
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _weight_dq(model, op_type: str):
    """(layer, DequantizeLinear of its weight) for every layer of ``op_type``; DQ is None if float."""
    producer = {out: node for node in model.graph.node for out in node.output}
    pairs = []
    for node in model.graph.node:
        if node.op_type == op_type:
            source = producer.get(node.input[1])
            pairs.append((node, source if source is not None and source.op_type == "DequantizeLinear" else None))
    return pairs


def _axis(node) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


# --- which nodes stay float -------------------------------------------------------------------


def test_split_finds_prologue_network_and_tail(trained):
    model = onnx.load(str(trained[0]))
    parts = split_graph(model)
    by_name = {node.name: node for node in model.graph.node}
    ops = lambda names: {by_name[name].op_type for name in names}  # noqa: E731

    assert {"Cast", "Transpose", "Mul", "Add"} <= ops(parts.prologue)  # uint8 -> normalized float
    assert {"ReduceSum", "Sqrt", "Div", "Resize", "Conv", "ReduceMax", "Greater", "Clip"} <= ops(parts.tail)
    tail_convs = [by_name[n] for n in parts.tail if by_name[n].op_type == "Conv"]
    assert len(tail_convs) == 4  # the separable Gaussian blur of the distillation and bank maps
    # The heads' comparisons with fitted statistics (bank search, Mahalanobis) stay in the tail.
    tail_matmuls = {n for n in parts.tail if by_name[n].op_type == "MatMul"}
    assert {n.split("/")[1] for n in tail_matmuls} == {"bank", "gaussian"}
    assert not parts.feature_layers & parts.tail
    assert all(by_name[n].op_type in ("Conv", "ConvTranspose") for n in parts.feature_layers)
    produced_in_tail = {out for name in parts.tail for out in by_name[name].output}
    assert {o.name for o in model.graph.output} <= produced_in_tail
    # The tail starts at the products the cosine similarity sums, not earlier: the student's
    # last Relu belongs to the network.
    assert "Relu" not in ops(parts.tail)


def test_stem_is_the_teacher_up_to_its_first_tap(trained):
    model = onnx.load(str(trained[0]))
    parts = split_graph(model)
    stem_layers = {name for name in parts.stem if name in parts.feature_layers}
    # EfficientNet-Lite0: the stem convolution and blocks 0-2 (stride 2 and 4) feed every scale.
    assert {name.split("/")[3] for name in stem_layers} == {"_conv_stem", "_blocks.0", "_blocks.1", "_blocks.2"}
    assert len(stem_layers) == 9
    assert not parts.stem & (parts.prologue | parts.tail)
    assert all("/teacher/" in name for name in parts.stem if name in parts.feature_layers)


def test_split_refuses_a_graph_without_the_anomaly_tail(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    weight = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "g", [x], [y], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(EngineError, match="anomaly-map tail"):
        split_graph(model)
    onnx.save(model, str(tmp_path / "conv.onnx"))
    with pytest.raises(CalibrationError, match="anomaly-map tail"):  # told as a calibration failure
        prepare_model(tmp_path / "conv.onnx", tmp_path / "prepared.onnx")


# --- Q/DQ structure per profile ---------------------------------------------------------------


def test_tensorrt_profile_is_symmetric_int8_with_per_channel_weights(tensorrt_model):
    out, report = tensorrt_model
    model = onnx.load(str(out))
    consts = _constants(model)
    assert is_qdq(model) and is_qdq(load_onnx(out))
    assert tensorrt_violations(model) == []
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zero_point = consts[node.input[2]]
            assert zero_point.dtype == np.int8 and not zero_point.any(), node.name
            if node.input[0] not in consts:  # an activation: one scale for the whole tensor
                assert consts[node.input[1]].size == 1, node.name
    # Weights: one scale per output channel. Conv weights are (out, in/group, kh, kw); ConvTranspose
    # weights are (in, out/group, kh, kw), so their output channels are on axis 1.
    for op_type, axis in (("Conv", 0), ("ConvTranspose", 1)):
        quantized = [(layer, dq) for layer, dq in _weight_dq(model, op_type) if dq is not None]
        assert quantized, op_type
        for layer, dq in quantized:
            weight = consts[dq.input[0]]
            assert weight.dtype == np.int8
            assert _axis(dq) == axis, layer.name
            assert consts[dq.input[1]].shape == (weight.shape[axis],), layer.name
    # TensorRT takes only INT8/FP8 through DequantizeLinear: biases stay float.
    assert all(consts[dq.input[0]].dtype != np.int32 for dq in model.graph.node
               if dq.op_type == "DequantizeLinear" and dq.input[0] in consts)
    # Lite0's stem (the 9 convolutions before the first tap) stays float; the rest is quantized.
    assert report["nodes"]["float_stem"] == 9
    assert report["nodes"]["quantized"]["Conv"] >= 40 and report["nodes"]["quantized"]["ConvTranspose"] == 6


def test_cpu_profile_has_uint8_activations_and_int8_per_channel_weights(calibrated):
    cpu_model = calibrated[0]
    model = onnx.load(str(cpu_model))
    consts = _constants(model)
    activation_types = {consts[n.input[2]].dtype for n in model.graph.node
                        if n.op_type == "QuantizeLinear" and n.input[0] not in consts}
    assert activation_types == {np.dtype(np.uint8)}
    for layer, dq in _weight_dq(model, "Conv"):
        if dq is not None:
            assert consts[dq.input[0]].dtype == np.int8 and _axis(dq) == 0, layer.name
    assert tensorrt_violations(model)  # uint8 zero points: not for TensorRT
    # ONNX Runtime's CPU provider runs ConvTranspose in float whatever the graph says: left float.
    assert all(dq is None for _, dq in _weight_dq(model, "ConvTranspose"))
    assert "ConvTranspose" not in PROFILES["cpu"].describe()["quantized_ops"]
    metadata = read_onnx_metadata(cpu_model)["quantization"]
    assert metadata["profile"] == "cpu" and metadata["activation_type"] == "uint8"


@pytest.fixture(scope="session")
def prepared_trained(trained, tmp_path_factory) -> tuple[Path, object]:
    """The pre-processed float graph the quantizer saw (node names match the INT8 model's), split."""
    prepared = tmp_path_factory.mktemp("prepared") / "prepared.onnx"
    parts = prepare_model(trained[0], prepared)
    return prepared, parts


@pytest.mark.parametrize("which", ["tensorrt", "cpu"])
def test_tail_and_prologue_stay_float(which, calibrated, tensorrt_model, prepared_trained):
    model = onnx.load(str(tensorrt_model[0] if which == "tensorrt" else calibrated[0]))
    _, parts = prepared_trained
    producer = {out: node for node in model.graph.node for out in node.output}
    for node in model.graph.node:
        source = producer.get(node.input[0]) if node.input else None
        if node.op_type == "QuantizeLinear" and source is not None:
            assert source.name not in parts.tail, f"{node.name} quantizes the tail's {source.name}"
        if node.name in parts.prologue:
            assert all(producer.get(name) is None or producer[name].op_type != "DequantizeLinear"
                       for name in node.input), node.name
    convs = _weight_dq(model, "Conv")
    assert sum(layer.name in parts.tail for layer, _ in convs) == 4  # the Gaussian blurs of both maps
    # The student's projections (read only by the tail) stay float where ONNX Runtime would run
    # them in float anyway; TensorRT runs them as INT8 with float output.
    assert len(parts.last_layers) == 3 and all("/decoder/projections." in name for name in parts.last_layers)
    float_convs = parts.tail | parts.stem | (parts.last_layers if which == "cpu" else frozenset())
    for layer, dq in convs:
        assert (dq is None) == (layer.name in float_convs), layer.name
    # The cosine similarity compares the float features, not the copies rounded for the next layer.
    for node in model.graph.node:
        if node.name in parts.tail:
            assert not any(producer.get(name) is not None and producer[name].op_type == "DequantizeLinear"
                           for name in node.input), node.name
    read = {name for node in model.graph.node for name in node.input}
    assert all(read.intersection(node.output) for node in model.graph.node
               if node.op_type in ("QuantizeLinear", "DequantizeLinear"))  # no pair left without readers
    assert all(init.name in read for init in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8
    assert {o.name for o in model.graph.output} == {"anomaly_map", "score", "normalized_score", "is_anomalous"}


def test_int8_model_keeps_the_ard_edge_metadata(trained, calibrated):
    out, report, _ = calibrated
    fp32 = read_onnx_metadata(trained[0])
    int8 = read_onnx_metadata(out)
    assert int8["precision"] == "int8" and fp32["precision"] == "fp32"
    for key in ("threshold", "score_stats", "input", "outputs", "model", "checkpoint_sha256"):
        assert int8[key] == fp32[key], key
    quant = int8["quantization"]
    assert quant["profile"] == "cpu" and quant["method"] == "percentile" and quant["float_stem"] is True
    assert "teacher stem" in quant["float_parts"]
    assert quant["activation_type"] == "uint8" and quant["per_channel_weights"] is True
    assert quant["fp32_onnx_sha256"] == report["onnx_sha256"]
    assert quant["num_calibration_images"] == report["ranges"]["num_images"] > 0


# --- the accuracy gate --------------------------------------------------------------------------


def test_gate_passes_on_a_trained_model_and_writes_three_files(calibrated):
    out, report, calls = calibrated
    gate = report["gate"]
    assert gate["status"] == "passed" and gate["reasons"] == []
    assert gate["num_defective"] > 0 and gate["num_good"] > 0
    assert gate["image_auroc_fp32"] > 0.8  # the fixture model really detects defects
    assert gate["auroc_drop"] <= 0.05 and gate["decision_agreement"] >= 0.85
    assert gate["score_pearson"] > 0.95 and gate["max_abs_score_diff"] < 0.5 * gate["score_std_fp32"]
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        [out.name, ranges_path_for(out).name, report_path_for(out).name]
    )
    assert json.loads(report_path_for(out).read_text())["gate"] == gate
    ranges = read_ranges(ranges_path_for(out))
    assert ranges["method"] == "percentile" and ranges["gate"]["decision_agreement"] == gate["decision_agreement"]
    assert all(low <= high for low, high in ranges["tensors"].values())
    # Progress: calibration, then each model over the gate images, counting up to the totals.
    stages = [call[0] for call in calls]
    assert stages[0] == "calibrate" and stages[-1] == "gate int8" and "gate fp32" in stages
    assert calls[-1][1] == calls[-1][2] == gate["num_images"]


def test_gate_refusal_raises_and_writes_nothing(trained, calibrated, tmp_path):
    onnx_path, data = trained
    out = tmp_path / "out" / "model.int8.onnx"
    with pytest.raises(AccuracyGateRefused, match="accuracy gate refused.*max-auroc-drop") as caught:
        calibrate_onnx(onnx_path, data, out, profile="cpu", method="percentile", max_auroc_drop=-1,
                       ranges_path=ranges_path_for(calibrated[0]))
    assert caught.value.report["gate"]["status"] == "refused"
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


# --- the ranges cache ---------------------------------------------------------------------------


def test_rebuild_from_the_cache_needs_no_images_and_gives_the_same_model(trained, calibrated, tmp_path):
    onnx_path, _ = trained
    gated = calibrated[0]
    # Automatic: a cache beside --out for this very ONNX file is used; the data folder may be gone.
    out = tmp_path / "model.int8.onnx"
    shutil.copy(ranges_path_for(gated), ranges_path_for(out))
    report = calibrate_onnx(onnx_path, tmp_path / "no-such-folder", out, profile="cpu", method="percentile")
    assert report["ranges"]["source"] == str(ranges_path_for(out))
    assert report["gate"]["status"] == "skipped"
    assert report["gate"]["ranges_gated_with"]["profile"] == "cpu"
    assert report["gate"]["ranges_gated_with"]["float_stem"] is True
    assert onnx.load(str(out)).graph == onnx.load(str(gated)).graph


def test_cache_of_another_model_is_refused(trained, calibrated, tmp_path):
    other = onnx.load(str(trained[0]))
    other.doc_string = "retrained"  # any other bytes: another model as far as the cache knows
    onnx.save(other, str(tmp_path / "other.onnx"))
    with pytest.raises(CalibrationError, match="another ONNX file"):
        calibrate_onnx(tmp_path / "other.onnx", None, tmp_path / "x.onnx", ranges_path=ranges_path_for(calibrated[0]))
    assert not (tmp_path / "x.onnx").exists()


def test_no_images_and_no_cache_is_an_error(trained, tmp_path):
    with pytest.raises(DataError, match="data folder not found.*no ranges cache"):
        calibrate_onnx(trained[0], tmp_path / "missing", tmp_path / "x.onnx")
    with pytest.raises(ConfigError, match="pass --data"):
        calibrate_onnx(trained[0], None, tmp_path / "x.onnx")


@pytest.mark.parametrize("method", ["entropy", "percentile", "minmax"])
def test_every_method_yields_ranges(prepared_trained, tmp_path, method):
    prepared, _ = prepared_trained
    frames = np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    ranges = collect_ranges(prepared, [(frames[:1], 1), (frames[1:], 1)], method, tmp_path)
    assert len(ranges) > 50
    assert all(np.isfinite(low) and np.isfinite(high) and low <= high for low, high in ranges.values())


def test_entropy_clips_a_long_tail_and_keeps_zero_for_relu_outputs():
    rng = np.random.default_rng(0)
    values = np.concatenate([np.abs(rng.normal(0, 1, 100_000)), [60.0]]).astype(np.float32)
    limit = float(np.abs(values).max())
    hist, edges = np.histogram(values, 2048, range=(-limit, limit))
    low, high = entropy_range(hist, edges.astype(np.float32), 0.0, limit)
    assert low == 0.0
    assert 3.0 < high < 30.0  # the lone outlier at 60 is clipped, the bulk kept


# --- bad inputs: one-line errors ----------------------------------------------------------------


def test_bad_inputs_fail_with_one_line(trained, calibrated, tmp_path):
    fp32 = trained[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "x.onnx"
    cases = [
        (dict(onnx_path=tmp_path / "nope.onnx"), CalibrationError, "ONNX model not found"),
        (dict(data_dir=empty), DataError, "no images in"),
        (dict(method="kl"), ConfigError, "unknown calibration method 'kl'"),
        (dict(profile="gpu"), ConfigError, "unknown profile 'gpu'"),
        (dict(onnx_path=calibrated[0]), CalibrationError, "already quantized"),
        (dict(out_path=fp32), ConfigError, "would overwrite the FP32 model"),
    ]
    for overrides, error, message in cases:
        args = {"onnx_path": fp32, "data_dir": tmp_path, "out_path": out, **overrides}
        with pytest.raises(error, match=message) as caught:
            calibrate_onnx(args.pop("onnx_path"), args.pop("data_dir"), args.pop("out_path"), **args)
        assert "\n" not in str(caught.value)
    # An ONNX file that is not an ard-edge export.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x],
                                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])),
              str(foreign))
    with pytest.raises(EngineError, match="not an ard-edge export"):
        calibrate_onnx(foreign, tmp_path, out)
    assert not is_qdq(load_onnx(foreign))
    assert not out.exists()


def test_profiles_document_their_types():
    assert PROFILES["tensorrt"].activation_type == "int8" and PROFILES["tensorrt"].symmetric_activations
    assert PROFILES["cpu"].activation_type == "uint8" and not PROFILES["cpu"].symmetric_activations


# --- the command line ---------------------------------------------------------------------------


def test_cli_rebuilds_from_ranges_and_prints_a_table(trained, calibrated, tmp_path):
    onnx_path, _ = trained
    done = _run("calibrate", "--onnx", str(onnx_path), "--ranges", str(ranges_path_for(calibrated[0])),
                "--method", "percentile", "--profile", "tensorrt", "--quantize-stem", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "calibration" / "model.int8.onnx"
    assert out.is_file() and is_qdq(load_onnx(out))
    assert "accuracy gate: SKIPPED" in done.stdout and f"wrote {Path('calibration') / 'model.int8.onnx'}" in done.stdout
    # --quantize-stem: every feature layer but the blur is quantized, the stem included.
    model = onnx.load(str(out))
    float_convs = [layer.name for layer, dq in _weight_dq(model, "Conv") if dq is None]
    assert len(float_convs) == 4 and "float32 stem" not in done.stdout  # the two maps' blurs
    # The cached ranges were gated with the cpu profile and a float stem: not this build.
    assert "gated in another build (profile cpu, float stem True)" in done.stdout
    assert read_onnx_metadata(out)["quantization"]["float_stem"] is False


def test_cli_gate_refusal_exits_3_and_writes_nothing(trained, calibrated, tmp_path):
    onnx_path, data = trained
    # A plain folder of good images works too; with cached ranges only the gate reads them.
    folder = tmp_path / "good"
    folder.mkdir()
    for image in sorted((data / "train" / "good").iterdir())[:3]:
        shutil.copy(image, folder)
    out = tmp_path / "calibration" / "m.int8.onnx"
    done = _run("calibrate", "--onnx", str(onnx_path), "--data", str(folder), "--out", str(out),
                "--method", "percentile", "--profile", "cpu", "--min-agreement", "1.01",
                "--ranges", str(ranges_path_for(calibrated[0])))
    assert done.returncode == 3, done.stderr  # its own status: a script can fall back to FP32
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: accuracy gate refused") and "min-agreement" in last
    assert "decision agreement" in done.stderr  # the table comes before the error line
    assert "float32 stem: 9 layers" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_cli_usage_errors_exit_2(tmp_path):
    done = _run("calibrate", "--onnx", str(tmp_path / "m.onnx"), "--data", str(tmp_path), "--method", "kl")
    assert done.returncode == 2 and "kl" in done.stderr
    done = _run("calibrate", "--help")
    assert done.returncode == 0 and "--max-auroc-drop" in done.stdout


def test_build_engine_int8_prints_the_gate(trained, tmp_path):
    onnx_path, data = trained
    out = tmp_path / "engines" / "m.engine"
    done = _run("build-engine", "--onnx", str(onnx_path), "--precision", "int8", "--calibration-data", str(data),
                "--target", "onnxruntime", "--out", str(out), "--max-auroc-drop", "0.05", "--min-agreement", "0.85")
    assert done.returncode == 0, done.stderr
    assert "accuracy gate: PASSED" in done.stdout and "float32 stem: 9 layers" in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith(f"wrote {out} (onnxruntime, int8")


def test_tail_is_pointed_back_only_at_the_tensor_it_read_in_float():
    """A Q/DQ pair whose input was renamed by the quantizer (Relu folded into the ranges) is kept."""
    from ard_edge.calibration._quantize import compare_float_features

    def graph(float_source: str):
        nodes = [
            helper.make_node("Conv", ["x", "w"], ["r"], name="conv"),  # was conv -> relu -> r
            helper.make_node("QuantizeLinear", ["r", "s", "z"], ["rq"], name="q"),
            helper.make_node("DequantizeLinear", ["rq", "s", "z"], ["rd"], name="dq"),
            helper.make_node("Mul", ["rd", "rd"], ["y"], name="tail_mul"),
        ]
        inits = [numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w"),
                 numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                 numpy_helper.from_array(np.array(0, np.uint8), "z")]
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])
        g = helper.make_graph(nodes, "g", [x], [y], inits)
        compare_float_features(g, frozenset({"tail_mul"}), {"r": float_source})
        return g

    renamed = graph("relu")  # in the float model, r came from the Relu: the Conv's r is unclipped
    assert list(renamed.node[-1].input) == ["rd", "rd"] and len(renamed.node) == 4
    same = graph("conv")
    assert list(same.node[-1].input) == ["r", "r"]
    assert [n.op_type for n in same.node] == ["Conv", "Mul"] and {i.name for i in same.initializer} == {"w"}
