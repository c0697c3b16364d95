"""Training on good images and evaluation on labelled test images (imports torch and the model)."""

from ard_edge.training._data import count_train_images
from ard_edge.training.config import TrainConfig
from ard_edge.training.trainer import CHECKPOINT_NAME, TrainResult, train

__all__ = ["CHECKPOINT_NAME", "TrainConfig", "TrainResult", "count_train_images", "train"]
