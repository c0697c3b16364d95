"""Mixed-precision FP16 ONNX: which nodes stay float32, graph validity, numerics against FP32."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
from _fp16 import compare_fp16, write_fp16_onnx
from _models import exported_onnx, random_frames

from ard_edge.engines.fp16 import convert_to_fp16
from ard_edge.engines.metadata import onnx_metadata, set_onnx_metadata
from ard_edge.engines.onnx_graph import split_graph
from ard_edge.errors import EngineError

FLOAT, FLOAT16 = 1, 10


@pytest.fixture(scope="session")
def fp32_model(tmp_path_factory):
    import onnx

    return onnx.load(str(exported_onnx(tmp_path_factory)))


@pytest.fixture(scope="session")
def fp16_model(fp32_model):
    return convert_to_fp16(fp32_model)


def nodes_by_name(model):
    return {node.name: node for node in model.graph.node}


def test_tail_is_the_anomaly_map_head(fp32_model):
    graph = fp32_model.graph
    tail = split_graph(fp32_model).tail
    ops = collections.Counter(node.op_type for node in graph.node if node.name in tail)
    # 3 scales x (x.y, |x|^2, |y|^2), the bank query's |q|^2 and the Gaussian's quadratic form.
    assert ops["ReduceSum"] == 11 and ops["ReduceMin"] == 1 and ops["MatMul"] == 2
    assert ops["Resize"] == 4 and ops["Sqrt"] == 5  # 3 scales + the bank's map; + bank, Gaussian
    assert ops["Conv"] == 4  # two 1-D Gaussian blur passes per map head, no network convolution
    assert ops["ReduceMax"] == 1 and ops["Greater"] == 1
    assert ops["Clip"] == 3  # normalized score, and the bank and Gaussian distances kept >= 0
    producers = {out: node.name for node in graph.node for out in node.output}
    for output in graph.output:
        assert producers[output.name] in tail
    # Nothing of the teacher or student is in the tail.
    assert not [name for name in tail if name.startswith("/model/")]


def test_prologue_ends_at_the_first_convolution(fp32_model):
    graph = fp32_model.graph
    prologue = split_graph(fp32_model).prologue
    ops = {node.op_type for node in graph.node if node.name in prologue}
    assert "Cast" in ops and "Conv" not in ops
    cast = next(node for node in graph.node if node.name in prologue and node.op_type == "Cast")
    assert [a.i for a in cast.attribute if a.name == "to"] == [FLOAT]  # uint8 -> float


def test_conversion_types(fp32_model, fp16_model):
    import onnx

    onnx.checker.check_model(fp16_model, full_check=True)
    assert [(i.name, i.type.tensor_type.elem_type) for i in fp16_model.graph.input] == [
        (i.name, i.type.tensor_type.elem_type) for i in fp32_model.graph.input
    ]
    assert [(o.name, o.type.tensor_type.elem_type) for o in fp16_model.graph.output] == [
        (o.name, o.type.tensor_type.elem_type) for o in fp32_model.graph.output
    ]
    meta = onnx_metadata(fp16_model)
    assert meta["precision"] == "fp16" and meta["fp16"]["folded_casts"] > 0

    keep = split_graph(fp32_model).float_nodes
    initializers = {init.name: init.data_type for init in fp16_model.graph.initializer}
    conv_weight_types = collections.Counter()
    for node in fp16_model.graph.node:
        if node.op_type == "Conv" and node.input[1] in initializers:
            conv_weight_types[("float32" if node.name in keep else "float16", initializers[node.input[1]])] += 1
    assert conv_weight_types[("float16", FLOAT16)] > 50  # the network's convolutions
    assert conv_weight_types[("float16", FLOAT)] == 0
    # The blur kernels are Constants consumed only by the tail: kept float32.
    by_name = nodes_by_name(fp16_model)
    blur = [node for node in fp16_model.graph.node if node.op_type == "Conv" and node.name in keep]
    assert len(blur) == 4  # the distillation and bank maps' blurs
    producers = {out: node for node in fp16_model.graph.node for out in node.output}
    for node in blur:
        kernel = producers[node.input[1]]
        assert kernel.op_type == "Constant" and kernel.attribute[0].t.data_type == FLOAT
    # No float32 -> float16 -> float32 round trip is left between float32 nodes.
    for node in fp16_model.graph.node:
        if node.op_type == "Cast" and node.attribute[0].i == FLOAT and node.input[0] in producers:
            source = producers[node.input[0]]
            if source.op_type == "Cast" and source.attribute[0].i == FLOAT16:
                assert producers.get(source.input[0]) is None or producers[source.input[0]].name not in keep
    assert set(nodes_by_name(fp32_model)) & set(by_name)  # names are preserved


def test_fp16_numerics_match_fp32(fp32_model, fp16_model):
    frames = np.concatenate(
        [random_frames(6, seed=3), np.zeros((1, 64, 64, 1), np.uint8), np.full((1, 64, 64, 1), 255, np.uint8)]
    )
    report = compare_fp16(fp32_model, fp16_model, frames)
    print("fp16 vs fp32:", report)  # the score error, reported (pytest -s)
    # 3 teacher and 3 student taps, the bank's patches and the Gaussian's centred vector.
    assert report["probed_features"] == 8 and report["probed_channel_sums"] == 11
    assert report["features_finite"] and report["channel_sums_finite"] and report["outputs_finite"]
    assert report["max_abs_feature"] < 65504 / 16  # far from float16 overflow
    assert report["decisions_identical"] and report["decision_agreement"] == 1.0
    # Relative: the untrained test model's heads are not z-scored, so its scores run into the tens.
    assert report["max_score_error"] < 1e-2 * max(report["max_abs_score"], 1.0)
    assert report["max_map_error"] < 2e-2 * max(report["max_abs_score"], 1.0)


def test_no_float16_value_enters_the_tail(fp16_model):
    """Every float input of a tail node is float32 (the converter's round trips are folded)."""
    import copy

    import onnx

    model = copy.deepcopy(fp16_model)
    del model.graph.value_info[:]  # let ONNX infer every type afresh
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.input, *graph.output)}
    types.update({init.name: init.data_type for init in graph.initializer})
    tail = split_graph(inferred).tail
    inputs = [(node.name, name) for node in graph.node if node.name in tail for name in node.input if name]
    assert len(inputs) > 100
    assert [pair for pair in inputs if pair[1] not in types] == []
    assert [pair for pair in inputs if types[pair[1]] == FLOAT16] == []


def test_write_fp16_onnx(tmp_path_factory, tmp_path):
    src = exported_onnx(tmp_path_factory)
    dst = tmp_path / "nested" / "m_fp16.onnx"
    metadata = write_fp16_onnx(src, dst)
    assert dst.is_file() and metadata["precision"] == "fp16"
    assert [p.name for p in dst.parent.iterdir()] == ["m_fp16.onnx"]
    assert dst.stat().st_size < 0.7 * Path(src).stat().st_size  # float16 weights


def test_refuses_models_it_cannot_convert(fp32_model, tmp_path):
    import copy

    import onnx
    from onnx import TensorProto, helper

    quantized = copy.deepcopy(fp32_model)
    set_onnx_metadata(quantized, dict(onnx_metadata(fp32_model), precision="int8"))
    with pytest.raises(EngineError, match="needs an fp32 export"):
        convert_to_fp16(quantized)

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    plain = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    set_onnx_metadata(plain, {"precision": "fp32"})
    onnx.checker.check_model(plain)
    with pytest.raises(EngineError, match="is it an ard-edge export"):
        convert_to_fp16(plain)
