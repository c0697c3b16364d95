"""What each score head adds: one trained checkpoint, every combination of its heads, one test split.

    .venv/bin/python benchmarks/accuracy/heads_ablation.py --model runs/mt/default/model.ckpt \
        --data ../shared/data/magnetic_tile --out docs/results/heads_ablation.json

The heads' statistics (per-scale normalization, z-scores) come from the checkpoint, which fitted
them on held-out good images; the test images only measure. Each variant's score is the maximum
of the sum of its heads' z-scored maps (the Gaussian, a score, adds everywhere, at weight 1), as
in a model with ``--gaussian-fusion sum``.

``--validation`` also scores every variant on the held-out good images against the same images
with ``ard-edge synth``'s seven drawn defect types: a choice between variants made on that
never sees a test image.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from ard_edge.metrics import ImageResult, evaluation_report, image_auroc, recall_at_false_reject_rate
from ard_edge.model import load_checkpoint
from ard_edge.model.anomaly_map import image_score, scale_distances
from ard_edge.training._data import load_test_set

# (name, heads); "rd" is the distillation map as Reverse Distillation sums it: scales unnormalized.
VARIANTS = (
    ("rd (unnormalized scales)", ("rd",)),
    ("distillation", ("distillation",)),
    ("bank", ("bank",)),
    ("gaussian", ("gaussian",)),
    ("bank + gaussian", ("bank", "gaussian")),
    ("distillation + bank", ("distillation", "bank")),
    ("distillation + gaussian", ("distillation", "gaussian")),
    ("distillation + bank + gaussian", ("distillation", "bank", "gaussian")),
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="JSON results.")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--validation", action="store_true",
                        help="Also rank the variants on held-out goods with drawn defects.")
    parser.add_argument("--holdout-fraction", type=float, default=0.1, help="As the checkpoint was trained. [0.1]")
    parser.add_argument("--seed", type=int, default=0, help="As the checkpoint was trained. [0]")
    args = parser.parse_args(argv)
    model, header = load_checkpoint(args.model)
    test = load_test_set(args.data, model.config.image_size)
    outputs = head_outputs(model, test.images, args.batch_size)
    labels = np.array([s.label for s in test.samples])
    rows = []
    for name, heads in VARIANTS:
        if not all(h in outputs for h in heads):
            continue
        amap = sum(outputs[h] for h in heads)
        rows.append(variant_row(name, amap, test, labels))
        print(format_row(rows[-1]), flush=True)
    validation = validation_rows(model, args) if args.validation else None
    if args.out:
        args.out.write_text(json.dumps({"model": str(args.model), "config": header["model"], "variants": rows,
                                        "validation": validation}, indent=2))
    return 0


def validation_rows(model, args) -> list[dict]:
    """Image AUROC of each variant: held-out goods against the same goods with drawn defects."""
    from ard_edge.data import DEFECT_TYPES
    from ard_edge.training._data import load_train_images

    holdout = load_train_images(args.data, model.config.image_size, args.holdout_fraction, args.seed).holdout
    frames, labels, types = validation_set(holdout)
    outputs = head_outputs(model, frames, args.batch_size)
    rows = []
    for name, heads in VARIANTS:
        if all(h in outputs for h in heads):
            scores = sum(outputs[h] for h in heads).reshape(len(frames), -1).max(axis=1)
            per_type = {d: image_auroc(labels[(types == d) | (labels == 0)], scores[(types == d) | (labels == 0)])
                        for d in DEFECT_TYPES}
            rows.append({"variant": name, "image_auroc": {"overall": image_auroc(labels, scores), **per_type}})
            print("validation " + format_auroc(rows[-1]), flush=True)
    return rows


def validation_set(holdout: torch.Tensor) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Held-out goods, then each of them with every drawn defect type: (frames, labels, types)."""
    from ard_edge.data import DEFECT_TYPES

    gray = holdout[..., 0].numpy()
    defective = drawn_defects(gray)
    frames = torch.from_numpy(np.repeat(np.stack([*gray, *defective])[..., None], 3, axis=3))
    labels = np.array([0] * len(gray) + [1] * len(defective))
    types = np.array(["good"] * len(gray) + [d for _ in gray for d in DEFECT_TYPES])
    return frames, labels, types


def drawn_defects(gray) -> list[np.ndarray]:
    """Each gray image with every drawn defect type in turn, image by image, seeded by position."""
    from ard_edge.data import DEFECT_TYPES
    from ard_edge.data._synth import _add_defect

    return [_add_defect(image, defect, np.random.default_rng(i * len(DEFECT_TYPES) + k))[0]
            for i, image in enumerate(gray) for k, defect in enumerate(DEFECT_TYPES)]


@torch.no_grad()
def head_outputs(model, images: torch.Tensor, batch_size: int) -> dict[str, np.ndarray]:
    """Every head's z-scored map (N, H, W) on ``images``; score heads broadcast to a map."""
    chunks: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(images), batch_size):
        frames = images[start : start + batch_size]
        for name, z in model.z_scores(model.head_outputs(frames)).items():
            z = z.expand(-1, 1, *model.anomaly_map.image_size)
            chunks.setdefault(name, []).append(z[:, 0].numpy())
        if model.decoder is not None:
            chunks.setdefault("rd", []).append(_rd_map(model, frames)[:, 0].numpy())
    maps = {name: np.concatenate(parts) for name, parts in chunks.items()}
    return maps


def _rd_map(model, frames: torch.Tensor) -> torch.Tensor:
    teacher, student = model(frames)
    amap = model.anomaly_map
    return amap.blur(sum(amap.upsample(d) for d in scale_distances(teacher, student)))


def variant_row(name: str, maps: np.ndarray, test, labels: np.ndarray) -> dict:
    scores = maps.reshape(len(maps), -1).max(axis=1)
    results = [ImageResult(s.defect_type, s.label, float(scores[i]), maps[i], test.masks[i])
               for i, s in enumerate(test.samples)]
    report = evaluation_report(results, threshold=float("inf"))
    types = np.array([s.defect_type for s in test.samples])
    recall = {"overall": recall_at_false_reject_rate(labels, scores, 0.01)}
    for defect in report["per_type"]:
        chosen = (types == defect) | (labels == 0)
        recall[defect] = recall_at_false_reject_rate(labels[chosen], scores[chosen], 0.01)
    return {"variant": name,
            "image_auroc": {"overall": report["overall"]["image_auroc"],
                            **{t: r["image_auroc"] for t, r in report["per_type"].items()}},
            "pixel_auroc": report["overall"]["pixel_auroc"], "pro": report["overall"]["pro"],
            "recall_at_1pct_frr": recall}


def format_auroc(row: dict) -> str:
    return f"{row['variant']:32s} image AUROC " + " ".join(f"{k} {v:.4f}" for k, v in row["image_auroc"].items())


def format_row(row: dict) -> str:
    return (f"{format_auroc(row)} | pixel {row['pixel_auroc']:.4f} PRO {row['pro']:.4f} "
            f"| recall@1%FRR {row['recall_at_1pct_frr']['overall']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
