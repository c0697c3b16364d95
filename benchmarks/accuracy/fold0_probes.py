"""Fold-0 probes of levers that need their own maps: test-time flips, k nearest neighbours, a
second teacher (its own bank, or concatenated taps in one bank), letterboxing, a wider coreset
projection. Each run saves one teacher's maps; ``--combine`` ranks the variants. Input geometries
rank on the same defects only with ``--native-defects`` (drawn before the resize).

    .venv/bin/python benchmarks/accuracy/fold0_probes.py --data ../shared/data/magnetic_tile \
        --backbone efficientnet_lite2 --out /tmp/probes/lite2.npz           # also lite1, --plain runs below
    .venv/bin/python benchmarks/accuracy/fold0_probes.py --combine /tmp/probes/lite2.npz /tmp/probes/lite1.npz

Like ``fold_sweep.py`` it fits the bank and the Gaussian on fold 0's 540 training images and
ranks on the 60 held-out goods against the same goods with ``synth``'s drawn defects; the test
set only measures. Maps are blurred at sigma 8 (the default) and kept in float16.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bank_sweep import per_type, z  # noqa: E402
from fold_sweep import distance, fit_gaussian, patches_of, pooled, taps_of  # noqa: E402
from heads_ablation import drawn_defects, validation_set  # noqa: E402

import ard_edge.model.heads as heads  # noqa: E402
from ard_edge.data import list_samples, split_train_holdout  # noqa: E402
from ard_edge.metrics import image_auroc  # noqa: E402
from ard_edge.model import ARDModel, ModelConfig, build_teacher  # noqa: E402
from ard_edge.model.anomaly_map import AnomalyMap  # noqa: E402
from ard_edge.training._data import _stack, load_test_set  # noqa: E402

# Test-time copies: the frame transform, and the map transform that undoes it (NHWC frames, (B, H, W) maps).
PASSES = {"plain": (lambda x: x, lambda m: m), "lr": (lambda x: x.flip(2), lambda m: m.flip(2)),
          "ud": (lambda x: x.flip(1), lambda m: m.flip(1))}
# Map variants from the saved maps: the maps averaged into one.
MAP_VARIANTS = {"bank 16k": ["m16"], "bank 8k": ["m8"], "k=3 neighbours": ["k3"],
                "flip lr": ["m16", "lr"], "flip lr+ud": ["m16", "lr", "ud"]}
# Image scores from the fused map: its maximum (the model's), or the mean of its top k pixels.
TOP_K = (1, 64, 256, 1024)


class ConcatTeacher(torch.nn.Module):
    """Two teachers' taps concatenated per stride (the Lite variants share strides and normalization)."""

    def __init__(self, names: list[str]):
        super().__init__()
        self.parts = torch.nn.ModuleList(build_teacher(n) for n in names)
        self.feature_info = [{"num_chs": sum(p.feature_info[k]["num_chs"] for p in self.parts)}
                             for k in range(len(self.parts[0].feature_info))]

    def forward(self, x):
        return [torch.cat(level, 1) for level in zip(*(p(x) for p in self.parts))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--backbone", default=ModelConfig.backbone, help="A teacher, or two joined by +.")
    parser.add_argument("--plain", action="store_true", help="No flips and no k=3 map: bank 16k and 8k only.")
    parser.add_argument("--letterbox", action="store_true",
                        help="Keep the aspect ratio, pad by replicating the border.")
    parser.add_argument("--native-defects", action="store_true",
                        help="Draw the validation defects on the held-out images at their own size, then resize, "
                        "so that input geometries (--letterbox or not) rank on the same defects.")
    parser.add_argument("--projection", type=int, default=heads._CORESET_PROJECTION, help="Coreset projection width.")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--combine", type=Path, nargs="+", help="Rank the variants of these saved runs.")
    args = parser.parse_args(argv)
    if args.combine:
        combine([np.load(p) for p in args.combine], [p.stem for p in args.combine])
        return 0
    torch.set_grad_enabled(False)
    heads._CORESET_PROJECTION = args.projection
    if args.letterbox:
        _letterbox_loader()
    names = args.backbone.split("+")
    teacher = build_teacher(names[0]) if len(names) == 1 else ConcatTeacher(names)
    model = ARDModel(ModelConfig(backbone=names[0]), teacher).eval()
    samples = list_samples(args.data, "train")
    images = _stack(samples, 256)
    goods = taps_of(model, images, 8)
    patches = patches_of(model, goods)
    train_idx, hold_idx = (np.array(p) for p in split_train_holdout(range(len(images)), 0.1, 0))
    model.bank.fit(patches[train_idx].reshape(-1, patches.shape[-1]))
    gaussian = fit_gaussian(pooled([g[train_idx] for g in goods], "mean")[0])
    if args.native_defects:
        frames, labels = native_validation_set([samples[i] for i in hold_idx], 256)
    else:
        frames, labels, _ = validation_set(images[hold_idx])
    test = load_test_set(args.data, 256)
    saved = {"val_labels": labels, "test_labels": np.array([s.label for s in test.samples]),
             "test_types": np.array([s.defect_type for s in test.samples])}
    for part, batch in (("val", frames), ("test", test.images)):
        maps, taps = maps_of(model, batch, args.plain)
        saved.update({f"{part}_{k}": v for k, v in maps.items()})
        saved[f"{part}_gauss"] = distance(gaussian, pooled(taps, "mean")[0])
    np.savez(args.out, **saved)
    return 0


def _letterbox_loader() -> None:
    import cv2

    import ard_edge.data._mvtec as mvtec

    squash = mvtec.resize_image

    def letterbox(image, size):
        scale = min(size[0] / image.shape[0], size[1] / image.shape[1])
        height, width = max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))
        top, left = (size[0] - height) // 2, (size[1] - width) // 2
        padded = cv2.copyMakeBorder(squash(image, (height, width)), top, size[0] - height - top, left,
                                    size[1] - width - left, cv2.BORDER_REPLICATE)
        return padded.reshape(size + image.shape[2:])

    mvtec.resize_image = letterbox


def native_validation_set(samples, size: int) -> tuple[torch.Tensor, np.ndarray]:
    """``validation_set``'s goods and drawn defects, drawn at each image's own size and then resized
    by the loader's rule (squash, or the letterbox of ``--letterbox``)."""
    import ard_edge.data._mvtec as mvtec
    from ard_edge.data import read_image

    natives = [read_image(s.path)[..., 0] for s in samples]
    defective = drawn_defects(natives)
    gray = np.stack([mvtec.resize_image(image, (size, size)) for image in [*natives, *defective]])
    labels = np.array([0] * len(natives) + [1] * len(defective))
    return torch.from_numpy(np.repeat(gray.reshape(len(gray), size, size, 1), 3, axis=3)), labels


def maps_of(model: ARDModel, frames: torch.Tensor, plain: bool) -> tuple[dict, list[torch.Tensor]]:
    amap = AnomalyMap((256, 256), sigma=8.0)
    out, plain_taps = {}, []
    blurred = lambda d: amap.blur(amap.upsample(d))[:, 0]  # noqa: E731
    for start in range(0, len(frames), 8):
        batch = frames[start : start + 8]
        for name, (forward, back) in PASSES.items():
            if plain and name != "plain":
                continue
            taps = model.teacher(model.preprocess(forward(batch)))
            patches = model.bank.embed(taps)
            shape = (-1, 1, *patches.shape[-2:])
            query = patches.flatten(2).transpose(1, 2)
            cross = model.bank.bank_sq - 2.0 * torch.matmul(query, model.bank.bank.t())
            square = (query * query).sum(2, keepdim=True)
            maps = {"m16" if name == "plain" else name: cross.amin(2, keepdim=True)}
            if name == "plain":
                plain_taps.append(taps)
                maps["m8"] = cross[:, :, :8000].amin(2, keepdim=True)
                if not plain:
                    maps["k3"] = cross.topk(3, dim=2, largest=False).values
            for key, nearest in maps.items():
                distance = (nearest + square).clamp_min(0.0).sqrt().mean(2).view(shape)
                out.setdefault(key, []).append(back(blurred(distance)).half().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}, [torch.cat(t) for t in zip(*plain_taps)]


def combine(runs: list, names: list[str]) -> None:
    """Each map variant per run, and the runs' banks and Gaussians summed as z-scores (the Gaussians at 0.25)."""
    def flat_map(run, part, keys):
        maps = sum(run[f"{part}_{k}"].astype(np.float32) for k in keys) / len(keys)
        return maps.reshape(len(maps), -1)

    rows = []
    for variant, keys in MAP_VARIANTS.items():
        if not all(f"val_{k}" in run for run in runs for k in keys):
            continue
        groups = [[i] for i in range(len(runs))] + ([list(range(len(runs)))] if len(runs) > 1 else [])
        for group, top in [(g, 1) for g in groups] + [([0], k) for k in TOP_K[1:] if variant == "bank 16k"]:
            fused = {}
            for part in ("val", "test"):
                local, gaussian = 0.0, 0.0
                for i in group:
                    good = flat_map(runs[i], "val", keys)[:60].max(1)  # the held-out goods come first
                    local = local + (flat_map(runs[i], part, keys) - good.mean()) / good.std(ddof=1)
                    gaussian = gaussian + z(runs[i][f"{part}_gauss"], runs[i]["val_gauss"][:60])
                image = local.max(1) if top == 1 else np.partition(local, -top, axis=1)[:, -top:].mean(1)
                fused[part] = image + 0.25 * gaussian
            score_name = "" if top == 1 else f", mean of the top {top} pixels"
            rows.append((" + ".join(names[i] for i in group) + f", {variant}{score_name}",
                         image_auroc(runs[0]["val_labels"], fused["val"]),
                         per_type(runs[0]["test_labels"], runs[0]["test_types"], fused["test"])))
    for name, validation, test in sorted(rows, key=lambda r: -r[1]):
        print(f"{name:48s} validation {validation:.4f} | test " + " ".join(f"{k} {v:.4f}" for k, v in test.items()))


if __name__ == "__main__":
    sys.exit(main())
