"""Real, tiny ard-edge exports for engine tests (untrained weights: structure, not accuracy).

Exports are cached per pytest session: every test module asks through its own session fixture,
and the first one pays the ~2 s export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_CACHE: dict[tuple, Path] = {}


def exported_onnx(tmp_path_factory, channels: int = 1, batch: int | None = None, image_size: int = 64) -> Path:
    """An exported 64x64 EfficientNet-Lite0/SE model (``batch=None``: dynamic batch)."""
    key = (channels, batch, image_size)
    if key not in _CACHE:
        from ard_edge.export import export_onnx
        from ard_edge.model import ARDModel, ModelConfig, build_teacher, save_checkpoint

        directory = tmp_path_factory.mktemp("model")
        checkpoint = directory / "m.ckpt"
        config = ModelConfig(backbone="efficientnet_lite0", image_size=image_size, attention="se", distillation=True, bank_size=256)
        model = ARDModel(config, build_teacher("efficientnet_lite0")).eval()
        _fit_feature_heads(model, image_size)
        save_checkpoint(checkpoint, model, {"threshold": 1.0, "score_stats": {"min": 0.5}, "normalization": {}})
        out = directory / f"m_c{channels}_b{batch or 'dyn'}.onnx"
        export_onnx(checkpoint, out, channels=channels, batch=batch)
        _CACHE[key] = out
    return _CACHE[key]


def with_fixed_batch(src: Path, dst: Path, batch: int) -> Path:
    """Copy of a dynamic-batch export declaring a fixed batch (the graph computes shapes itself)."""
    import onnx

    model = onnx.load(str(src))
    for value in (*model.graph.input, *model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = batch
    onnx.save(model, str(dst))
    return dst


def quantized_qdq(src: Path, dst: Path, frames: np.ndarray) -> Path:
    """A Q/DQ INT8 copy of ``src`` calibrated on ``frames``, symmetric as TensorRT requires."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{"frames": frame[None]} for frame in frames])

        def get_next(self):
            return next(self._batches, None)

    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv"],
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )
    return dst


def random_frames(count: int, size: int = 64, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Noise plus smooth structure, so the network sees more than white noise."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (count, size, size, channels))
    ramp = np.linspace(0, 255, size)[None, :, None, None] * rng.uniform(0, 1, (count, 1, 1, 1))
    return np.clip(0.5 * noise + 0.5 * ramp, 0, 255).astype(np.uint8)


def tensorrt_importable() -> bool:
    """True where TensorRT's Python package imports (the no-TensorRT message tests skip there)."""
    try:
        import tensorrt  # noqa: F401
    except Exception:
        return False
    return True


def _fit_feature_heads(model, image_size: int) -> None:
    """Bank and Gaussian fitted on random frames: real statistics, not the zeros of a new model."""
    import torch

    frames = torch.from_numpy(random_frames(24, image_size, 3, seed=7))
    with torch.no_grad():
        taps = model.teacher(model.preprocess(frames))
        patches = model.bank.embed(taps)
        model.bank.fit(patches.permute(0, 2, 3, 1).reshape(-1, patches.shape[1]))
        model.gaussian.fit(model.gaussian.pool(taps))
