"""Bank size and the Gaussian's weight, for one teacher and image size, from one fit.

    .venv/bin/python benchmarks/accuracy/bank_sweep.py --data ../shared/data/magnetic_tile \
        --backbone efficientnet_lite2 --sizes 8000 16000 24000 32000 --gaussian-weights 0 0.5 1

The greedy coreset is built farthest-first, so its first k vectors are the k-vector coreset: one
fit at the largest size gives every smaller bank. Each variant's image score is the bank map's
maximum plus ``weight`` times the Gaussian's score, both z-scored on the held-out goods, as the
model fuses them (weight 1 is the model). The **validation** column (held-out goods against the
same images with ``ard-edge synth``'s drawn defects) is what a choice may be made on; the test
columns only measure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heads_ablation import validation_set  # noqa: E402

from ard_edge.metrics import image_auroc, recall_at_false_reject_rate  # noqa: E402
from ard_edge.model import ARDModel, ModelConfig, build_teacher  # noqa: E402
from ard_edge.training._data import load_test_set, load_train_images  # noqa: E402
from ard_edge.training.heads import _fit_feature_heads, _train_taps  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--backbone", default=ModelConfig.backbone)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8000, 16000, 24000, 32000])
    parser.add_argument("--gaussian-weights", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--out", type=Path, help="JSON results.")
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes)
    config = ModelConfig(backbone=args.backbone, image_size=args.image_size, bank_size=sizes[-1])
    model = ARDModel(config, build_teacher(args.backbone)).eval()
    data = load_train_images(args.data, args.image_size, 0.1, 0)
    _fit_feature_heads(model, _train_taps(model, None, data.train, 16, "cpu"), (),
                       lambda done, total: print(f"coreset {done}/{total}", flush=True) if done % 4000 == 0 else None)
    holdout = scores(model, data.holdout, sizes, args.batch_size)
    frames, val_labels, val_types = validation_set(data.holdout)
    validation = scores(model, frames[len(data.holdout):], sizes, args.batch_size)
    test = load_test_set(args.data, args.image_size)
    test_scores = scores(model, test.images, sizes, args.batch_size)
    labels = np.array([s.label for s in test.samples])
    types = np.array([s.defect_type for s in test.samples])
    rows = []
    for k, size in enumerate(sizes):
        for weight in args.gaussian_weights:
            def fused(part, k=k, weight=weight):
                return z(part["bank"][:, k], holdout["bank"][:, k]) + weight * z(part["gaussian"], holdout["gaussian"])
            val = np.concatenate([fused(holdout), fused(validation)])
            rows.append({"bank_size": size, "gaussian_weight": weight,
                         "validation_auroc": image_auroc(val_labels, val),
                         "test": per_type(labels, types, fused(test_scores))})
            print(format_row(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"backbone": args.backbone, "image_size": args.image_size, "rows": rows},
                                       indent=2))
    return 0


@torch.no_grad()
def scores(model: ARDModel, images: torch.Tensor, sizes: list[int], batch_size: int) -> dict[str, np.ndarray]:
    """Bank image score per bank size (N, len(sizes)) and the Gaussian's score (N,)."""
    bank, gaussian = [], []
    for start in range(0, len(images), batch_size):
        taps = model.teacher(model.preprocess(images[start : start + batch_size]))
        gaussian.append(model.gaussian(taps).numpy())
        bank.append(np.stack([image_max(model, nearest) for nearest in prefix_nearest(model, taps, sizes)], axis=1))
    return {"bank": np.concatenate(bank), "gaussian": np.concatenate(gaussian)}


def prefix_nearest(model: ARDModel, taps: list[torch.Tensor], sizes: list[int]) -> list[torch.Tensor]:
    """Squared distance of each patch to its nearest vector among the bank's first ``size``, per size."""
    patches = model.bank.embed(taps)
    height, width = patches.shape[-2:]
    query = patches.flatten(2).transpose(1, 2)
    cross = model.bank.bank_sq - 2.0 * torch.matmul(query, model.bank.bank.t())
    bounds = [0, *sizes]
    running, out = None, []
    for low, high in zip(bounds, bounds[1:]):
        part = cross[..., low:high].amin(dim=2)
        running = part if running is None else torch.minimum(running, part)
        out.append((running + (query * query).sum(dim=2)).clamp_min(0.0).sqrt().view(-1, 1, height, width))
    return out


def image_max(model: ARDModel, nearest: torch.Tensor) -> np.ndarray:
    amap = model.anomaly_map.blur(model.anomaly_map.upsample(nearest))
    return amap.flatten(1).amax(dim=1).numpy()


def z(values: np.ndarray, good: np.ndarray) -> np.ndarray:
    return (values - good.mean()) / max(good.std(ddof=1), 1e-6)


def per_type(labels: np.ndarray, types: np.ndarray, scores_: np.ndarray) -> dict:
    result = {"overall": image_auroc(labels, scores_)}
    for defect in sorted(set(types[labels == 1])):
        chosen = (types == defect) | (labels == 0)
        result[defect] = image_auroc(labels[chosen], scores_[chosen])
    result["recall_at_1pct_frr"] = recall_at_false_reject_rate(labels, scores_, 0.01)
    return result


def format_row(row: dict) -> str:
    test = " ".join(f"{k} {v:.4f}" for k, v in row["test"].items())
    return (f"bank {row['bank_size']:6d} gaussian x{row['gaussian_weight']:.2f} | "
            f"validation {row['validation_auroc']:.4f} | test {test}")


if __name__ == "__main__":
    sys.exit(main())
