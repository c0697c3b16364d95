"""Fused ONNX export: structure, metadata, atomic writes, and parity with PyTorch."""

import numpy as np
import onnx
import pytest
import torch

from ard_edge.engines import open_engine
from ard_edge.engines.metadata import read_onnx_metadata
from ard_edge.errors import CheckpointError, ExportError
from ard_edge.export import export_onnx
from ard_edge.model import ARDModel, ModelConfig, build_teacher, save_checkpoint

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = ARDModel(ModelConfig(backbone="efficientnet_lite0", image_size=64, distillation=True, bank_size=256, attention="cbam"), build_teacher("efficientnet_lite0")).eval()
    path = tmp_path_factory.mktemp("run") / "model.ckpt"
    save_checkpoint(path, model, {"threshold": 2.0, "score_stats": {"min": 1.0}, "normalization": {}})
    return path


def test_graph_is_fused_checked_and_carries_metadata(checkpoint, tmp_path):
    out = tmp_path / "m.onnx"
    metadata = export_onnx(checkpoint, out, channels=1, batch=4)
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    (frames,) = inferred.graph.input
    assert frames.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in frames.type.tensor_type.shape.dim] == [4, 64, 64, 1]
    outputs = {o.name: o.type.tensor_type.elem_type for o in inferred.graph.output}
    assert outputs == {
        "anomaly_map": onnx.TensorProto.FLOAT,
        "score": onnx.TensorProto.FLOAT,
        "normalized_score": onnx.TensorProto.FLOAT,
        "is_anomalous": onnx.TensorProto.BOOL,
    }
    stored = read_onnx_metadata(out)
    assert stored == metadata
    assert stored["model"]["attention"] == "cbam" and stored["threshold"] == 2.0
    assert len(stored["checkpoint_sha256"]) == 64


def test_graph_has_no_dead_nodes_or_unused_teacher_stages(checkpoint, tmp_path):
    out = tmp_path / "m.onnx"
    export_onnx(checkpoint, out, channels=3, batch=None)
    graph = onnx.load(str(out)).graph
    consumed = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    dead = [node.name for node in graph.node if not any(o in consumed for o in node.output)]
    assert dead == []
    # Lite0 blocks 0..10 reach stride 16; the head and blocks 11..15 must not be in the graph.
    depthwise = [n for n in graph.node if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)]
    assert len(depthwise) == 11
    # H and W are fixed per export: the teacher's TF "same" pads are constants, not shape
    # arithmetic evaluated on every call (that was 500 of the graph's 1000 nodes).
    assert not [n.name for n in graph.node if "/teacher/" in n.name and n.op_type in ("Shape", "Gather", "Div")]


def test_onnx_matches_pytorch_on_images(checkpoint, tmp_path):
    out = tmp_path / "m.onnx"
    export_onnx(checkpoint, out, channels=3, batch=None)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    _assert_parity(checkpoint, out, frames)


def _assert_parity(checkpoint, onnx_path, frames):
    channels = frames.shape[-1]
    with open_engine(onnx_path) as ort_engine, open_engine(checkpoint, channels=channels) as torch_engine:
        a, b = ort_engine.infer(frames), torch_engine.infer(frames)
    scale = np.abs(b.anomaly_map).max()
    assert np.abs(a.anomaly_map - b.anomaly_map).max() <= 1e-4 * scale
    np.testing.assert_allclose(a.score, b.score, rtol=1e-5)
    np.testing.assert_array_equal(a.is_anomalous, b.is_anomalous)
    return a


def test_onnx_matches_pytorch_on_real_magnetic_tile_images(checkpoint, tmp_path, magnetic_tile):
    from ard_edge.data import read_image, resize_image

    out = tmp_path / "mono.onnx"
    export_onnx(checkpoint, out, channels=1, batch=None)
    paths = sorted((magnetic_tile / "test" / "blowhole").iterdir())[:2] + sorted((magnetic_tile / "test" / "good").iterdir())[:2]
    frames = np.stack([resize_image(read_image(p), (64, 64))[..., :1] for p in paths])
    _assert_parity(checkpoint, out, frames)


def test_bad_export_requests_leave_nothing_behind(checkpoint, tmp_path):
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="--channels"):
        export_onnx(checkpoint, out, channels=4)
    with pytest.raises(ExportError, match="opset"):
        export_onnx(checkpoint, out, opset=1)
    with pytest.raises(CheckpointError):
        export_onnx(tmp_path / "nope.ckpt", out)
    assert list(tmp_path.iterdir()) == []
