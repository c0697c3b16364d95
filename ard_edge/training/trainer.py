"""Train the student and bottleneck on good images; pick the threshold on held-out good images."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ard_edge._version import __version__
from ard_edge._io import atomic_path
from ard_edge.errors import CheckpointError, ConfigError
from ard_edge.metrics import fitted_tail_threshold, threshold_for_false_reject_rate
from ard_edge.model import ARDModel, ModelConfig, build_teacher, distillation_loss, save_checkpoint
from ard_edge.training.heads import fit_heads
from ard_edge.training._data import load_train_images
from ard_edge.training.config import TrainConfig
from ard_edge.training.inference import predict_scores

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "model.ckpt"
STATE_NAME = "train_state.pt"
# Teacher features are cached when they fit in this much memory; else computed every step.
_FEATURE_CACHE_LIMIT_BYTES = 4 << 30



class TrainProgress(Protocol):
    """What the trainer reports while it works (the CLI draws bars from it)."""

    def features(self, done: int, total: int) -> None: ...  # teacher pass, images

    def step(self, epoch: int, step: int, loss: float) -> None: ...  # after each optimizer step

    def coreset(self, done: int, total: int) -> None: ...  # memory-bank vectors chosen


@dataclasses.dataclass
class TrainResult:
    checkpoint: Path
    epochs_done: int
    completed: bool
    final_loss: float
    threshold: float
    train_images_per_s: float  # optimizer steps only (teacher features cached)
    end_to_end_images_per_s: float  # including the one-off teacher pass
    wall_s: float


def train(config: TrainConfig, resume: bool = False, progress: TrainProgress | None = None) -> TrainResult:
    """Train per ``config``; Ctrl-C stops after writing a usable checkpoint."""
    started = time.perf_counter()
    device = _device(config.device)
    torch.manual_seed(config.seed)
    data = load_train_images(config.data, config.model.image_size, config.holdout_fraction, config.seed)
    teacher = build_teacher(config.model.backbone, config.teacher_weights, config.random_teacher)
    model = ARDModel(_fit_bank_size(config.model, len(data.train)), teacher).to(device)
    if resume and model.decoder is None:
        raise ConfigError("--resume: this model trains no student (no --distillation): train without --resume")

    cache_started = time.perf_counter()
    features = _teacher_features(model, data.train, config.batch_size, device, progress)
    cache_s = time.perf_counter() - cache_started

    loop_started = time.perf_counter()
    if model.decoder is None:
        epoch, loss_value, completed, images_seen = 0, float("nan"), True, 0
    else:
        epoch, loss_value, completed, images_seen = _distill(config, model, features, data, resume, device, progress)
    loop_s = time.perf_counter() - loop_started

    model.eval()
    fit_heads(model, features, data, config.batch_size, device, progress and progress.coreset)
    holdout_scores = predict_scores(model, data.holdout, config.batch_size, device)
    threshold = fitted_tail_threshold(holdout_scores, config.false_reject_rate)
    train_rate = images_seen / loop_s if loop_s > 0 else 0.0
    end_to_end = images_seen / (loop_s + cache_s) if images_seen else 0.0
    metadata = {
        "threshold": float(threshold),
        "score_stats": _score_stats(holdout_scores),
        "threshold_rule": {
            "method": "gumbel-moments",
            "false_reject_rate": config.false_reject_rate,
            "holdout_images": len(holdout_scores),
            "empirical_threshold": threshold_for_false_reject_rate(holdout_scores, config.false_reject_rate),
        },
        "head_stats": {name: {"mean": float(model.head_mean[k]), "std": float(model.head_std[k])}
                       for k, name in enumerate(model.config.heads)},
        "normalization": {"mean": list(config.model.normalization[0]), "std": list(config.model.normalization[1])},
        "data_fingerprint": data.fingerprint,
        "versions": _versions(),
        "training": {
            "data": str(config.data),
            "epochs": config.epochs,
            "epochs_done": epoch,
            "distillation": model.decoder is not None,
            "completed": completed,
            "batch_size": config.batch_size,
            "lr": config.lr,
            "seed": config.seed,
            "train_images": len(data.train),
            "holdout_images": len(data.holdout),
            "false_reject_rate": config.false_reject_rate,
            "final_loss": None if math.isnan(loss_value) else loss_value,
            "train_images_per_s": round(train_rate, 2),
            "end_to_end_images_per_s": round(end_to_end, 2),
        },
    }
    checkpoint = config.out / CHECKPOINT_NAME
    save_checkpoint(checkpoint, model.cpu(), metadata)
    return TrainResult(
        checkpoint=checkpoint,
        epochs_done=metadata["training"]["epochs_done"],
        completed=completed,
        final_loss=loss_value,
        threshold=float(threshold),
        train_images_per_s=train_rate,
        end_to_end_images_per_s=end_to_end,
        wall_s=time.perf_counter() - started,
    )


def _distill(config: TrainConfig, model: ARDModel, features, data, resume: bool, device, progress):
    """Train the bottleneck and student: (epochs done, last loss, completed, images seen)."""
    optimizer = torch.optim.Adam(model.trainable_parameters(), lr=config.lr, betas=config.betas)
    generator = torch.Generator().manual_seed(config.seed)
    start_epoch = _resume(config, model, optimizer, generator) if resume else 0
    steps = -(-len(data.train) // config.batch_size)
    epoch, loss_value, images_seen = start_epoch, float("nan"), 0
    try:
        for epoch in range(start_epoch, config.epochs):
            model.train()
            order = torch.randperm(len(data.train), generator=generator)
            for step in range(steps):
                index = order[step * config.batch_size : (step + 1) * config.batch_size]
                loss_value = _train_step(model, optimizer, features, data.train, index, device)
                images_seen += len(index)
                if progress:
                    progress.step(epoch, step, loss_value)
            _save_state(config.out / STATE_NAME, model, optimizer, generator, epoch + 1)
    except KeyboardInterrupt:
        log.warning("interrupted in epoch %d: writing a checkpoint of the last finished step", epoch + 1)
        return epoch, loss_value, False, images_seen
    return config.epochs, loss_value, True, images_seen


def _train_step(model, optimizer, features, images, index, device) -> float:
    if features is None:
        batch = images[index].to(device)
        teacher, student = model(batch)
    else:
        teacher = [f[index].to(device) for f in features]
        student = model.decoder(model.bottleneck(teacher))
    loss = distillation_loss(teacher, student)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def _teacher_features(model: ARDModel, images: torch.Tensor, batch_size: int, device, progress) -> list[torch.Tensor] | None:
    """The frozen teacher's taps for every training image, computed once (no augmentation in RD)."""
    probe = model.teacher(model.preprocess(images[:1].to(device)))
    per_image = sum(f[0].numel() * f.element_size() for f in probe)
    if per_image * len(images) > _FEATURE_CACHE_LIMIT_BYTES:
        log.info("teacher features do not fit the cache; computing them every step")
        return None
    chunks = []
    for start in range(0, len(images), batch_size):
        chunks.append(model.teacher(model.preprocess(images[start : start + batch_size].to(device))))
        if progress:
            progress.features(min(start + batch_size, len(images)), len(images))
    return [torch.cat([c[k] for c in chunks]).cpu() for k in range(len(probe))]


def _fit_bank_size(model: ModelConfig, num_images: int) -> ModelConfig:
    """The bank cannot hold more vectors than the training images have patches."""
    patches = num_images * (model.image_size // 8) ** 2
    return dataclasses.replace(model, bank_size=min(model.bank_size, patches))


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible to PyTorch; use --device cpu")
    return torch.device(name)


def _save_state(path: Path, model: ARDModel, optimizer, generator: torch.Generator, epoch: int) -> None:
    state = {
        "epoch": epoch,
        "bottleneck": model.bottleneck.state_dict(),
        "decoder": model.decoder.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "config": json.dumps(dataclasses.asdict(model.config)),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _resume(config: TrainConfig, model: ARDModel, optimizer, generator: torch.Generator) -> int:
    path = config.out / STATE_NAME
    if not path.is_file():
        raise ConfigError(f"--resume: no {STATE_NAME} in {config.out}; train without --resume first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is corrupted ({exc}); delete it and train again") from exc
    if state["config"] != json.dumps(dataclasses.asdict(model.config)):
        raise ConfigError(f"--resume: {path} was trained with another model configuration")
    model.bottleneck.load_state_dict(state["bottleneck"])
    model.decoder.load_state_dict(state["decoder"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    log.info("resuming after epoch %d", state["epoch"])
    return int(state["epoch"])


def _score_stats(scores: np.ndarray) -> dict[str, float]:
    return {
        "count": int(len(scores)),
        "min": float(scores.min()),
        "max": float(scores.max()),
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "p50": float(np.percentile(scores, 50)),
        "p99": float(np.percentile(scores, 99)),
    }


def _versions() -> dict[str, Any]:
    import platform

    return {"ard_edge": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}
