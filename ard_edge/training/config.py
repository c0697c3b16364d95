"""Training settings, from the command line or a YAML file (``ard-edge train --config``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from ard_edge.config import check
from ard_edge.model.ard import ModelConfig


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    data: Path  # MVTec AD layout folder; train/good is used
    out: Path  # run folder: model.ckpt, train_state.pt, train_log.jsonl
    model: ModelConfig = ModelConfig()
    teacher_weights: Path | None = None  # torchvision .pth/.safetensors for ResNet teachers
    random_teacher: bool = False  # explicit opt-in to an untrained teacher
    # With --distillation: 340 steps on 600 images, within the 30-minute budget of a 2-core line PC.
    epochs: int = 10
    batch_size: int = 16
    lr: float = 0.005  # Reverse Distillation's Adam settings
    betas: tuple[float, float] = (0.5, 0.999)
    seed: int = 0
    device: Literal["cpu", "cuda"] = "cpu"
    holdout_fraction: float = 0.1  # of train/good, kept out of training to pick the threshold
    false_reject_rate: float = 0.005  # allowed share of good parts above the threshold

    def validate(self, path: str = "") -> None:
        prefix = f"{path}." if path else ""
        check(self.epochs >= 1, f"{prefix}epochs", "must be >= 1")
        check(self.batch_size >= 1, f"{prefix}batch_size", "must be >= 1")
        check(self.lr > 0, f"{prefix}lr", "must be > 0")
        check(0 < self.holdout_fraction < 0.5, f"{prefix}holdout_fraction", "must be in (0, 0.5)")
        check(0 <= self.false_reject_rate < 0.5, f"{prefix}false_reject_rate", "must be in [0, 0.5)")
        self.model.validate(f"{prefix}model")
