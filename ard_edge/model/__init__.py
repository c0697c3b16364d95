"""The ARD network: teachers, attention bottleneck, student decoder, anomaly map, checkpoints.

It needs torch, so only the layers that run the network import it: ``ard_edge.training``,
``ard_edge.export`` and the PyTorch engine (``ard_edge.engines.torch_engine``, lazily). The fused
module they deploy, :mod:`ard_edge.model.fused`, is imported from its own module.
"""

from ard_edge.model.anomaly_map import AnomalyMap, distillation_loss, image_score
from ard_edge.model.ard import ARDModel, ModelConfig, Preprocess
from ard_edge.model.attention import ATTENTIONS
from ard_edge.model.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from ard_edge.model.teachers import TEACHERS, build_teacher

__all__ = [
    "ARDModel",
    "ATTENTIONS",
    "AnomalyMap",
    "ModelConfig",
    "Preprocess",
    "TEACHERS",
    "build_teacher",
    "distillation_loss",
    "image_score",
    "load_checkpoint",
    "read_metadata",
    "save_checkpoint",
]
