"""The ARD model: frozen teacher, attention one-class bottleneck, student decoder."""

from __future__ import annotations

import dataclasses
import functools

import torch
from torch import nn

from ard_edge.config import check
from ard_edge.model.anomaly_map import AnomalyMap, blur_radius, image_score
from ard_edge.model.attention import ATTENTIONS
from ard_edge.model.bottleneck import OneClassBottleneck
from ard_edge.model.decoder import StudentDecoder
from ard_edge.model.heads import BANK_AUGMENTS, GAUSSIAN_FEATURES, GlobalGaussian, PatchBank
from ard_edge.model.teachers import IMAGENET_MEAN, IMAGENET_STD, LITE_VARIANTS, TEACHERS

# EfficientNet-Lite was trained in TensorFlow on pixels scaled to [-1, 1].
_TEACHER_NORMALIZATION = dict.fromkeys(LITE_VARIANTS, ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
# How the Gaussian's weighted z-score joins the local heads' map (ModelConfig.gaussian_fusion).
GAUSSIAN_FUSIONS = ("sum", "max")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of an ARD model; stored in every checkpoint and exported graph."""

    # Lite2 scored best of Lite0/1/2 on held-out goods with drawn defects (docs/results.md).
    backbone: str = "efficientnet_lite2"
    # SE measured best of the four on magnetic tile (docs/results.md); none is plain Reverse Distillation.
    attention: str = "se"
    image_size: int = 256  # square model input, pixels
    bottleneck_blocks: int = 3
    decoder_blocks: int = 2  # residual blocks per decoder stage
    # Decoder channels as a multiple of the teacher's: x3 cut the synthetic demo's loss from 1.19
    # to 0.31 and raised its image AUROC from 0.58 to 0.80 (docs/results.md).
    decoder_width: int = 3
    # The score heads (docs/results.md, ablation). On magnetic tile the student's map added
    # nothing to the bank and the Gaussian, on the test set and on held-out goods with drawn
    # defects alike, so the default trains no student; --distillation adds it (ARD, or RD
    # with attention none).
    distillation: bool = False  # train the attention bottleneck and student decoder
    bank_size: int = 16000  # memory-bank (PatchCore coreset) vectors; 0: no bank
    gaussian: bool = True  # Mahalanobis distance of the globally pooled taps
    # How the Gaussian's weighted z-score joins the local heads' map. max: the fused map is the
    # larger of the two, so a part fails on a local defect or a global one and a mild global shift
    # no longer adds to a mild local one; sum: added to every pixel. The Gaussian pools each tap's
    # per-channel means, or (mean+std) its means and standard deviations. Max, mean+std, weight
    # 0.6 had the best mean of 180 blur, weight and feature variants on four held-out folds of
    # good images with drawn defects (docs/results.md).
    gaussian_weight: float = 0.6
    gaussian_fusion: str = "max"
    gaussian_features: str = "mean+std"
    # Gaussian blur of the anomaly map before its maximum, in model pixels. None: image_size / 32,
    # so the blur keeps its share of the image at any size; at 256 px that is 8, which scored above
    # 2 and 4 on each of four held-out folds of good images with drawn defects (docs/results.md).
    blur_sigma: float | None = None
    # Mirror copies of the training images whose patches the bank also covers (none or flip). On
    # magnetic tile flip scored lower on held-out goods and triples the coreset time (docs/results.md).
    bank_augment: str = "none"

    @property
    def heads(self) -> tuple[str, ...]:
        """The score heads, in the order of the fused score's statistics."""
        flags = (("distillation", self.distillation), ("bank", self.bank_size > 0), ("gaussian", self.gaussian))
        return tuple(name for name, on in flags if on)

    def validate(self, path: str = "model") -> None:
        check(self.backbone in TEACHERS, f"{path}.backbone", f"choose one of {', '.join(TEACHERS)}")
        check(self.attention in ATTENTIONS, f"{path}.attention", f"choose one of {', '.join(ATTENTIONS)}")
        check(self.image_size >= 32 and self.image_size % 32 == 0, f"{path}.image_size",
              f"must be a multiple of 32 (the bottleneck's stride), got {self.image_size}")
        check(self.bottleneck_blocks >= 1, f"{path}.bottleneck_blocks", "must be >= 1")
        check(self.decoder_blocks >= 1, f"{path}.decoder_blocks", "must be >= 1")
        check(self.decoder_width >= 1, f"{path}.decoder_width", "must be >= 1")
        check(self.bank_size >= 0, f"{path}.bank_size", "must be >= 0 (0: no memory bank)")
        check(self.gaussian_weight > 0, f"{path}.gaussian_weight", "must be > 0 (--no-gaussian turns it off)")
        if self.blur_sigma is not None:
            check(0 < blur_radius(self.blur_sigma) < self.image_size, f"{path}.blur_sigma",
                  f"must be > 0 and its kernel radius (4 sigma) below image_size {self.image_size}, "
                  f"got {self.blur_sigma}")
        check(self.gaussian_fusion in GAUSSIAN_FUSIONS, f"{path}.gaussian_fusion",
              f"choose one of {', '.join(GAUSSIAN_FUSIONS)}")
        check(self.gaussian_features in GAUSSIAN_FEATURES, f"{path}.gaussian_features",
              f"choose one of {', '.join(GAUSSIAN_FEATURES)}")
        check(self.bank_augment in BANK_AUGMENTS, f"{path}.bank_augment", f"choose one of {', '.join(BANK_AUGMENTS)}")
        check(bool(self.heads), f"{path}.distillation",
              "the model needs a score head: turn on distillation, the bank or the Gaussian")

    @property
    def map_sigma(self) -> float:
        """The anomaly map's blur in model pixels: ``blur_sigma``, or image_size / 32."""
        return self.image_size / 32 if self.blur_sigma is None else self.blur_sigma

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) on 0..1 RGB pixels, as the teacher was trained."""
        return _TEACHER_NORMALIZATION.get(self.backbone, (IMAGENET_MEAN, IMAGENET_STD))


class Preprocess(nn.Module):
    """Raw uint8 NHWC camera frames (1 or 3 channels) -> normalized float NCHW RGB."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        # Fold /255 and the normalization into one multiply-add.
        scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, 3, 1, 1)
        shift = torch.tensor([-m / s for m, s in zip(mean, std)]).view(1, 3, 1, 1)
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).to(torch.float32)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return x * self.scale + self.shift


class ARDModel(nn.Module):
    """Teacher features in, student reconstructions out; ``predict`` gives map and score."""

    def __init__(self, config: ModelConfig, teacher: nn.Module):
        super().__init__()
        self.config = config
        channels = tuple(info["num_chs"] for info in teacher.feature_info)
        self.preprocess = Preprocess(*config.normalization)
        self.teacher = teacher
        self.bottleneck = self.decoder = None
        if config.distillation:
            self.bottleneck = OneClassBottleneck(channels, config.attention, config.bottleneck_blocks)
            self.decoder = StudentDecoder(
                self.bottleneck.out_channels, channels, config.decoder_blocks, config.decoder_width
            )
        self.anomaly_map = AnomalyMap((config.image_size, config.image_size), len(channels), config.map_sigma)
        self.bank = PatchBank(channels, config.bank_size) if config.bank_size else None
        self.gaussian = GlobalGaussian(channels, config.gaussian_features) if config.gaussian else None
        # Each head's image score on held-out good images (mean, std): the fused map adds the
        # heads as z-scores, so no head's units dominate. Identity until fitted.
        self.register_buffer("head_mean", torch.zeros(len(config.heads)))
        self.register_buffer("head_std", torch.ones(len(config.heads)))

    def train(self, mode: bool = True) -> ARDModel:
        # The teacher is frozen: its BatchNorm statistics must never update.
        super().train(mode)
        self.teacher.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        if self.decoder is None:
            return []
        return [*self.bottleneck.parameters(), *self.decoder.parameters()]

    def forward(self, frames: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """uint8 NHWC frames -> (teacher features, student features, or None without a student)."""
        with torch.no_grad():
            teacher = self.teacher(self.preprocess(frames))
        student = self.decoder(self.bottleneck(teacher)) if self.decoder is not None else None
        return teacher, student

    def head_outputs(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 NHWC frames -> each head's raw map (B, 1, H, W), or score (B,) for the Gaussian."""
        teacher, student = self(frames)
        outputs = {} if student is None else {"distillation": self.anomaly_map(teacher, student)}
        if self.bank is not None:
            outputs["bank"] = self.anomaly_map.blur(self.anomaly_map.upsample(self.bank(teacher)))
        if self.gaussian is not None:
            outputs["gaussian"] = self.gaussian(teacher)
        return outputs

    def z_scores(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each head's output as a z-score on held-out goods, (B, 1, H, W) or (B, 1, 1, 1) for a score."""
        z = {}
        for k, name in enumerate(self.config.heads):
            value = (outputs[name] - self.head_mean[k]) / self.head_std[k]
            z[name] = value if value.dim() == 4 else value.view(-1, 1, 1, 1)
        return z

    def fuse(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The local heads' z-scores summed, joined by the Gaussian's weighted z-score: a map (B, 1, H, W).

        The Gaussian is a score, so it is added everywhere or, with ``gaussian_fusion`` max, sets
        the map's floor."""
        z = self.z_scores(outputs)
        gaussian = z.pop("gaussian") * self.config.gaussian_weight if "gaussian" in z else None
        local = functools.reduce(torch.add, z.values()) if z else None
        if local is None:
            return gaussian
        if gaussian is None:
            return local
        return local + gaussian if self.config.gaussian_fusion == "sum" else torch.maximum(local, gaussian)

    def predict(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 NHWC frames -> (anomaly map (B, 1, H, W), image score (B,)): the score is the map's max."""
        amap = self.fuse(self.head_outputs(frames))
        return amap, image_score(amap)
