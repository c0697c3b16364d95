"""The engine interface: opening, input checks, lifecycle, for ONNX Runtime and PyTorch."""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from ard_edge.engines import open_engine
from ard_edge.errors import EngineError
from ard_edge.export import export_onnx
from ard_edge.model import ARDModel, ModelConfig, build_teacher, save_checkpoint

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engines")
    model = ARDModel(ModelConfig(backbone="efficientnet_lite0", image_size=64, distillation=True, bank_size=256), build_teacher("efficientnet_lite0")).eval()
    save_checkpoint(folder / "model.ckpt", model, {"threshold": 2.0, "score_stats": {"min": 1.0}})
    export_onnx(folder / "model.ckpt", folder / "mono.onnx", channels=1, batch=2)
    return folder


def test_engine_describes_itself_and_infers(exported):
    with open_engine(exported / "mono.onnx") as engine:
        spec = engine.input_spec
        assert (spec.height, spec.width, spec.channels, spec.fixed_batch) == (64, 64, 1, 2)
        assert engine.describe()["metadata"]["threshold"] == 2.0
        engine.warmup(1)
        result = engine.infer(np.zeros((2, 64, 64, 1), np.uint8))
        assert result.anomaly_map.shape == (2, 1, 64, 64)
        assert result.is_anomalous.dtype == bool and len(result) == 2
        assert result[1].score.shape == (1,)
        expected_norm = np.clip(0.5 + (result.score - 2.0) * 0.5, 0, 1)
        np.testing.assert_allclose(result.normalized_score, expected_norm, rtol=1e-5)
        np.testing.assert_array_equal(result.is_anomalous, result.score > 2.0)


@pytest.mark.parametrize(
    "frames, message",
    [
        (np.zeros((2, 64, 64, 1), np.float32), "uint8"),
        (np.zeros((2, 64, 64, 3), np.uint8), "takes 1-channel frames but the camera delivers 3-channel.*--channels 3"),
        (np.zeros((2, 32, 32, 1), np.uint8), "64x64"),
        (np.zeros((3, 64, 64, 1), np.uint8), "batch 3 outside"),
        (np.zeros((64,), np.uint8), "NHWC"),
    ],
)
def test_wrong_input_gets_one_clear_error(exported, frames, message):
    with open_engine(exported / "mono.onnx") as engine, pytest.raises(EngineError, match=message):
        engine.infer(frames)


def test_close_twice_is_harmless_and_closed_engine_refuses(exported):
    engine = open_engine(exported / "model.ckpt", channels=1)
    engine.close()
    engine.close()
    with pytest.raises(EngineError, match="closed"):
        engine.infer(np.zeros((1, 64, 64, 1), np.uint8))


def test_files_that_are_not_ard_edge_models(tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    with pytest.raises(EngineError, match="not a runnable ONNX model"):
        open_engine(text)
    node = helper.make_node("Identity", ["frames"], ["y"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("frames", TensorProto.UINT8, [1, 8, 8, 1])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 8, 8, 1])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), str(foreign))
    with pytest.raises(EngineError, match="not an ard-edge export"):
        open_engine(foreign)
    with pytest.raises(EngineError, match="unknown engine type"):
        open_engine(text.rename(tmp_path / "model.bin"))
    with pytest.raises(EngineError, match="not found"):
        open_engine(tmp_path / "missing.onnx")


def test_threads_cap_cpu_engines(exported):
    with open_engine(exported / "mono.onnx", threads=1) as engine:
        assert engine.describe()["intra_op_threads"] == 1
    with open_engine(exported / "model.ckpt", threads=1, channels=1) as engine:
        assert torch.get_num_threads() == 1
