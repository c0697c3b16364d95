"""Scoring choices of the bank-and-Gaussian model, ranked on several held-out folds of the good images.

    .venv/bin/python benchmarks/accuracy/fold_sweep.py --data ../shared/data/magnetic_tile \
        --folds 0 1 2 3 --out docs/results/fold_sweep.json

One validation split (60 good images) cannot tell apart changes under about a point. Each fold
here holds out other good training images (``split_train_holdout`` with that seed), fits the bank
and the Gaussian on the rest, and scores its held-out goods against the same goods with
``ard-edge synth``'s drawn defects; the **validation** column is the mean over folds and is what a
choice may be made on. Only fold 0 (the split ``ard-edge train`` uses) also scores the test set,
which only measures.

The variants, all from one coreset per fold: the blur before the bank map's maximum, the
Gaussian's weight and its features (``parse_features``: per-channel statistics of the model's
taps or, for an EfficientNet-Lite teacher, of any stage down to stride 32), and how its z-score
joins the bank's (added, or the larger of the two).
``--bank-augment`` (the bank also covers mirror copies of the training images) and
``--stride8-weight`` (the stride-8 tap's scale in the bank's vectors) change the coreset, so they
are one run per setting.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bank_sweep import per_type, z  # noqa: E402
from heads_ablation import validation_set  # noqa: E402

from ard_edge.data import list_samples, split_train_holdout  # noqa: E402
from ard_edge.metrics import image_auroc  # noqa: E402
from ard_edge.model import ARDModel, ModelConfig, build_teacher  # noqa: E402
from ard_edge.model.anomaly_map import AnomalyMap  # noqa: E402
from ard_edge.model.ard import GAUSSIAN_FUSIONS  # noqa: E402
from ard_edge.model.heads import BANK_AUGMENTS, BANK_TAPS  # noqa: E402
from ard_edge.model.teachers import ALL_STAGES, TAP_STAGES  # noqa: E402
from ard_edge.training._data import _stack, load_test_set  # noqa: E402

# The Gaussian's features, written as groups of pooled statistics: "mean" is the model's (the
# per-channel means of the taps). A group joins parts with "+", a part is a statistic (mean, std,
# max over the frame) with "@" and the teacher stages it pools (default 124, the taps; 1 to 6
# are strides 4, 8, 16, 16, 32, 32). Each group is its own Gaussian; groups joined by ","
# have their z-scores summed, by "|" each is a floor of its own (the largest z-score counts).
# Examples: mean+std, mean,max, mean@123456, mean|mean@123456.
STATISTICS = {"mean": lambda t: t.mean(dim=(2, 3)), "std": lambda t: t.std(dim=(2, 3)),
              "max": lambda t: t.amax(dim=(2, 3))}


def gaussian_features(spec: str) -> str:
    """argparse type: ``spec`` if it parses, else a one-line error."""
    try:
        parse_features(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return spec


def parse_features(spec: str) -> tuple[list[list[tuple[str, tuple[int, ...]]]], str]:
    """``spec`` -> (groups of (statistic, stages) parts, how the groups join: sum or max)."""
    if "," in spec and "|" in spec:
        raise ValueError(f"{spec}: join the groups with ',' or with '|', not both")
    groups = []
    for group in re.split(r"[,|]", spec):
        parts = []
        for part in group.split("+"):
            statistic, at, digits = part.partition("@")
            stages = tuple(map(int, digits)) if digits.isdigit() else () if at else TAP_STAGES
            if statistic not in STATISTICS or not stages or list(stages) != sorted(set(stages)) \
                    or not set(stages) <= set(ALL_STAGES):
                raise ValueError(f"{spec}: '{part}' is not STATISTIC[@STAGES] with a statistic of "
                                 f"{', '.join(STATISTICS)} and ascending stages from 1 to 6")
            parts.append((statistic, stages))
        groups.append(parts)
    return groups, "max" if "|" in spec else "sum"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--backbone", default=ModelConfig.backbone)
    parser.add_argument("--image-size", type=int, default=ModelConfig.image_size)
    parser.add_argument("--bank-size", type=int, default=ModelConfig.bank_size)
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3], help="Split seeds; 0 is train's.")
    parser.add_argument("--bank-augment", choices=BANK_AUGMENTS, default="none")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[2.0, 4.0, 8.0], help="Blurs of the bank map.")
    parser.add_argument("--gaussian-weights", type=float, nargs="+", default=[0.0, 0.25, 0.5])
    parser.add_argument("--gaussian-features", type=gaussian_features, nargs="+", default=["mean", "mean+std"],
                        help="Pooled statistics of teacher stages, one Gaussian per group (the grammar above "
                        "STATISTICS in this file), e.g. mean (the model's), mean+std, mean,max, mean@123456, "
                        "mean|mean@123456. [mean mean+std]")
    parser.add_argument("--fusions", choices=GAUSSIAN_FUSIONS, nargs="+", default=["sum"],
                        help="The weighted Gaussian z-score added to the bank's, or the larger of the two. "
                        "[sum, as the tables before the fusion sweep]")
    parser.add_argument("--stride8-weight", type=float, default=1.0,
                        help="Scale of the stride-8 tap in the bank's vectors (the stride-16 tap stays 1).")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, help="JSON results.")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    config = ModelConfig(backbone=args.backbone, image_size=args.image_size, bank_size=args.bank_size)
    stages = studied_stages(args.gaussian_features)
    model = ARDModel(config, build_teacher(args.backbone)).eval()
    # The bank reads the model's taps; deeper stages come from the same weights, tapped further.
    teacher = model.teacher if stages == TAP_STAGES else build_teacher(args.backbone, tap_stages=stages)
    if args.stride8_weight != 1.0:
        weight_stride8(model.bank, args.stride8_weight)
    samples = list_samples(args.data, "train")
    images = _stack(samples, args.image_size)
    started = time.perf_counter()
    goods = taps_of(model, images, args.batch_size, teacher)
    bank_patches = [patches_of(model, model_taps(goods, stages))]
    for augment in BANK_AUGMENTS[args.bank_augment]:
        augmented = taps_of(model, augment(images), args.batch_size, teacher)
        bank_patches.append(patches_of(model, model_taps(augmented, stages)))
    print(f"teacher pass: {time.perf_counter() - started:.0f} s", flush=True)
    test = load_test_set(args.data, args.image_size) if 0 in args.folds else None
    grid = variants(args.sigmas, args.gaussian_weights, args.gaussian_features, args.fusions)
    folds = [run_fold(model, teacher, args, grid, seed, stages, images, goods, bank_patches, test)
             for seed in args.folds]
    rows = summarize(folds, grid)
    if args.out:
        args.out.write_text(json.dumps({"backbone": args.backbone, "image_size": args.image_size,
                                        "bank_size": args.bank_size, "bank_augment": args.bank_augment,
                                        "stride8_weight": args.stride8_weight,
                                        "folds": args.folds, "rows": rows}, indent=2))
    return 0


def weight_stride8(bank, weight: float) -> None:
    """Scale the stride-8 tap before the bank embeds it (the bank's own forward uses it too)."""
    embed = bank.embed

    def weighted(features):
        return embed([f * weight if k == BANK_TAPS[0] else f for k, f in enumerate(features)])

    bank.embed = weighted


def taps_of(model: ARDModel, images: torch.Tensor, batch_size: int, teacher=None) -> list[torch.Tensor]:
    """``teacher`` (default: the model's) taps of the model's preprocessed ``images``."""
    teacher = model.teacher if teacher is None else teacher
    parts = [teacher(model.preprocess(images[s : s + batch_size])) for s in range(0, len(images), batch_size)]
    return [torch.cat(level) for level in zip(*parts)]


def patches_of(model: ARDModel, taps: list[torch.Tensor]) -> torch.Tensor:
    """Bank vectors per image: (N, H/8 * W/8, C)."""
    embedded = model.bank.embed(taps)
    return embedded.flatten(2).transpose(1, 2).contiguous()


def studied_stages(features: list[str]) -> tuple[int, ...]:
    """The teacher stages the chosen feature sets and the bank read, ascending."""
    used = {stage for spec in features for group in parse_features(spec)[0] for _, part in group for stage in part}
    return tuple(sorted(used | set(TAP_STAGES)))


def model_taps(taps: list[torch.Tensor], stages: tuple[int, ...]) -> list[torch.Tensor]:
    return [taps[stages.index(stage)] for stage in TAP_STAGES]


def pooled(taps: list[torch.Tensor], features: str, stages: tuple[int, ...] = TAP_STAGES) -> list[np.ndarray]:
    """One (N, D) matrix per Gaussian of ``features``; "mean" is the model's ``GlobalGaussian.pool``."""
    groups = []
    for group in parse_features(features)[0]:
        parts = [STATISTICS[stat](taps[stages.index(stage)]) for stat, part in group for stage in part]
        groups.append(torch.cat(parts, dim=1).double().numpy())
    return groups


def run_fold(model, teacher, args, grid, seed, stages, images, goods, bank_patches, test) -> dict:
    train_idx, hold_idx = (np.array(part) for part in split_train_holdout(range(len(images)), 0.1, seed))
    started = time.perf_counter()
    model.bank.fit(torch.cat([p[train_idx].reshape(-1, p.shape[-1]) for p in bank_patches]))
    print(f"fold {seed}: coreset of {len(train_idx) * len(bank_patches)} images in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    gaussians = {f: [fit_gaussian(x) for x in pooled([g[train_idx] for g in goods], f, stages)]
                 for f in args.gaussian_features}
    holdout = images[hold_idx]
    frames, labels, types = validation_set(holdout)
    parts = {"holdout": [g[hold_idx] for g in goods],
             "drawn": taps_of(model, frames[len(holdout):], args.batch_size, teacher)}
    if seed == 0 and test is not None:
        parts["test"] = taps_of(model, test.images, args.batch_size, teacher)
    scored = {name: head_scores(model, taps, gaussians, args.sigmas, args.batch_size, stages)
              for name, taps in parts.items()}
    fold = {"seed": seed, "validation": {}, "validation_per_type": {}, "test": {}}
    for variant in grid:
        val = np.concatenate([fused(scored["holdout"], scored["holdout"], *variant),
                              fused(scored["drawn"], scored["holdout"], *variant)])
        fold["validation"][variant_name(*variant)] = image_auroc(labels, val)
        fold["validation_per_type"][variant_name(*variant)] = per_type(labels, types, val)
        if "test" in scored:
            test_labels = np.array([s.label for s in test.samples])
            test_types = np.array([s.defect_type for s in test.samples])
            fold["test"][variant_name(*variant)] = per_type(
                test_labels, test_types, fused(scored["test"], scored["holdout"], *variant))
    best = max(fold["validation"], key=fold["validation"].get)
    print(f"fold {seed}: best on validation {best} {fold['validation'][best]:.4f}", flush=True)
    return fold


def fit_gaussian(features: np.ndarray):
    from sklearn.covariance import LedoitWolf

    return LedoitWolf().fit(features)


def distance(fit, features: np.ndarray) -> np.ndarray:
    """Mahalanobis distance to a fitted Gaussian (sklearn returns its square)."""
    return np.sqrt(np.maximum(fit.mahalanobis(features), 0.0))


def head_scores(model: ARDModel, taps: list[torch.Tensor], gaussians: dict, sigmas, batch_size: int,
                stages: tuple[int, ...] = TAP_STAGES) -> dict:
    """Bank image score per blur sigma, and per feature set the Mahalanobis distances (N, groups)."""
    maps = {sigma: AnomalyMap((model.config.image_size,) * 2, sigma=sigma) for sigma in sigmas}
    bank = {sigma: [] for sigma in sigmas}
    local = model_taps(taps, stages)
    for start in range(0, len(local[0]), batch_size):
        nearest = model.bank([t[start : start + batch_size] for t in local])
        for sigma, amap in maps.items():
            bank[sigma].append(amap.blur(amap.upsample(nearest)).flatten(1).amax(dim=1).numpy())
    gaussian = {f: np.stack([distance(fit, x) for fit, x in zip(fits, pooled(taps, f, stages))], axis=1)
                for f, fits in gaussians.items()}
    return {"bank": {s: np.concatenate(v) for s, v in bank.items()}, "gaussian": gaussian}


def variants(sigmas, weights, features, fusions) -> list[tuple]:
    # At weight 0 neither the Gaussian's features nor the fusion matter: one row.
    return [v for v in itertools.product(sigmas, weights, features, fusions)
            if v[1] or (v[2], v[3]) == (features[0], fusions[0])]


def variant_name(sigma: float, weight: float, features: str, fusion: str) -> str:
    return f"blur {sigma:g}, gaussian x{weight:g} ({features}, {fusion})"


def fused(part: dict, holdout: dict, sigma: float, weight: float, features: str, fusion: str) -> np.ndarray:
    bank = z(part["bank"][sigma], holdout["bank"][sigma])
    gaussian = weight * gaussian_z(part["gaussian"][features], holdout["gaussian"][features],
                                   parse_features(features)[1])
    return bank + gaussian if fusion == "sum" else np.maximum(bank, gaussian)


def gaussian_z(distances: np.ndarray, holdout: np.ndarray, join: str) -> np.ndarray:
    """One z-score from each group's Mahalanobis distance: their largest, or their sum z-scored again."""
    groups = np.stack([z(d, h) for d, h in zip(distances.T, holdout.T)])
    if join == "max":
        return groups.max(axis=0)
    return z(groups.sum(axis=0), np.stack([z(h, h) for h in holdout.T]).sum(axis=0))


def summarize(folds: list[dict], grid: list[tuple]) -> list[dict]:
    rows = []
    for variant in grid:
        name = variant_name(*variant)
        per_fold = [f["validation"][name] for f in folds]
        test = next((f["test"][name] for f in folds if f["test"]), None)
        drawn = folds[0]["validation_per_type"][name]
        by_type = {t: float(np.mean([f["validation_per_type"][name][t] for f in folds])) for t in drawn}
        rows.append({"variant": name, "validation_mean": float(np.mean(per_fold)), "validation_folds": per_fold,
                     "validation_per_type": by_type, "test": test})
    rows.sort(key=lambda r: -r["validation_mean"])
    for row in rows:
        test = "" if row["test"] is None else " | test " + " ".join(f"{k} {v:.4f}" for k, v in row["test"].items())
        folds_text = " ".join(f"{v:.4f}" for v in row["validation_folds"])
        print(f"{row['variant']:46s} validation {row['validation_mean']:.4f} ({folds_text}){test}", flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(main())
