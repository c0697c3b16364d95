"""PyTorch backend: runs a checkpoint eagerly through the very module that is exported to ONNX.

It is the reference every other backend is compared with. It is the one engine that imports
the model (``ard_edge.model.fused``), lazily, so the rest of ``engines`` stays torch-free.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ard_edge.engines.base import OUTPUT_NAMES, Engine, InputSpec
from ard_edge.errors import EngineError


class TorchEngine(Engine):
    backend = "torch"

    def __init__(self, path: str | Path, channels: int = 3, device: str = "cpu", threads: int | None = None):
        import torch

        from ard_edge.model import load_checkpoint
        from ard_edge.model.fused import fused_from_checkpoint

        if channels not in (1, 3):
            raise EngineError(f"channels must be 1 or 3, got {channels}")
        if device == "cuda" and not torch.cuda.is_available():
            raise EngineError("TorchEngine: no CUDA device visible to PyTorch; use device='cpu'")
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        model, header = load_checkpoint(path)
        self._device = torch.device(device)
        self._module = fused_from_checkpoint(model, header).to(self._device).eval()
        size = model.config.image_size
        metadata = {**header, "precision": "fp32", "device": device}
        super().__init__(path, InputSpec(size, size, channels), metadata)

    def with_channels(self, channels: int) -> TorchEngine:
        """Same weights, another input channel count (a checkpoint accepts either)."""
        self.input_spec = dataclasses.replace(self.input_spec, channels=channels)
        return self

    def _infer_impl(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        with self._torch.inference_mode():
            outputs = self._module(self._torch.from_numpy(frames).to(self._device))
        return {name: out.cpu().numpy() for name, out in zip(OUTPUT_NAMES, outputs)}

    def _close_impl(self) -> None:
        del self._module
