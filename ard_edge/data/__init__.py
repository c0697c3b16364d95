"""Datasets on disk: image/mask reading, the MVTec AD layout, holdout split, fingerprint, synthetic data.

numpy and cv2 only: training wraps :class:`MVTecDataset` in a torch Dataset elsewhere.
"""

from ard_edge.data._fingerprint import data_fingerprint
from ard_edge.data._images import (
    IMAGE_EXTENSIONS,
    RESIZE_INTERPOLATION,
    engine_frame,
    interpolation_for,
    is_image_file,
    read_image,
    read_mask,
    resize_image,
    resize_mask,
    write_png,
)
from ard_edge.data._mvtec import LoadedSample, MVTecDataset, Sample, list_samples, load_sample
from ard_edge.data._split import split_train_holdout
from ard_edge.data._synth import DEFECT_TYPES, GLOBAL_DEFECTS, LOCAL_DEFECTS, TEXTURES, SynthSummary, write_synthetic_dataset

__all__ = [
    "DEFECT_TYPES",
    "GLOBAL_DEFECTS",
    "LOCAL_DEFECTS",
    "IMAGE_EXTENSIONS",
    "LoadedSample",
    "MVTecDataset",
    "RESIZE_INTERPOLATION",
    "Sample",
    "SynthSummary",
    "TEXTURES",
    "data_fingerprint",
    "engine_frame",
    "interpolation_for",
    "is_image_file",
    "list_samples",
    "load_sample",
    "read_image",
    "read_mask",
    "resize_image",
    "resize_mask",
    "split_train_holdout",
    "write_png",
    "write_synthetic_dataset",
]
