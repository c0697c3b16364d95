"""model.ckpt: a safetensors file holding every weight and a JSON metadata header.

safetensors stores tensors and strings only, so loading a checkpoint never unpickles code.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from ard_edge._io import atomic_path
from ard_edge.config import from_dict
from ard_edge.errors import ArdEdgeError, CheckpointError
from ard_edge.model.anomaly_map import BLUR_SIGMA
from ard_edge.model.ard import ARDModel, ModelConfig
from ard_edge.model.teachers import create_teacher_architecture, freeze

FORMAT = "ard-edge-checkpoint/1"
_META_KEY = "ard_edge"


def save_checkpoint(path: str | Path, model: ARDModel, metadata: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    header = {"format": FORMAT, "model": dataclasses.asdict(model.config), **metadata}
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={_META_KEY: json.dumps(header)})


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The checkpoint's JSON header, without loading weights."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(_META_KEY)
    except Exception as exc:
        raise CheckpointError(f"{path} is not an ard-edge checkpoint or is corrupted ({exc})") from exc
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not an ard-edge checkpoint")
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise CheckpointError(f"{path}: its metadata header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise CheckpointError(f"{path} has format {found!r}; this ard-edge reads {FORMAT}")
    return header


def _with_old_defaults(model: Any) -> Any:
    """Checkpoints from before a field existed keep the behaviour they were fitted with."""
    if not isinstance(model, dict):
        return model
    old = {"blur_sigma": BLUR_SIGMA, "bank_augment": "none"}
    if model.get("gaussian"):
        old["gaussian_weight"] = 1.0
        old["gaussian_fusion"] = "sum"
        old["gaussian_features"] = "mean"
    return {**old, **model}


def load_checkpoint(path: str | Path) -> tuple[ARDModel, dict[str, Any]]:
    """Rebuild the model from its checkpoint, in eval mode on the CPU."""
    from safetensors.torch import load_file

    header = read_metadata(path)
    try:
        config = from_dict(ModelConfig, _with_old_defaults(header.get("model")), "model")
    except ArdEdgeError as exc:
        raise CheckpointError(f"{path}: bad model section: {exc}") from exc
    model = ARDModel(config, freeze(create_teacher_architecture(config.backbone)))
    try:
        model.load_state_dict(load_file(str(path)))
    except (RuntimeError, OSError) as exc:
        raise CheckpointError(f"{path}: weights do not match its model section ({exc})") from exc
    return model.eval(), header
