"""``ard-edge train`` and ``ard-edge eval``."""

from __future__ import annotations

from pathlib import Path

import click

from ard_edge.cli._common import progress_bar

_MODEL_OPTIONS = ("backbone", "attention", "image_size", "decoder_width", "distillation", "bank_size", "gaussian",
                  "gaussian_weight", "gaussian_fusion", "gaussian_features", "blur_sigma", "bank_augment")


@click.command()
@click.option("--data", type=click.Path(path_type=Path), help="Dataset folder in MVTec AD layout (train/good is used).")
@click.option("--out", type=click.Path(path_type=Path), help="Run folder for model.ckpt and the resume state.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="YAML file with these settings; options override it.")
@click.option("--backbone", help="Teacher: efficientnet_lite2 (default), efficientnet_lite0, efficientnet_lite1, resnet18, resnet34, resnet50, wide_resnet50_2.")
@click.option("--teacher-weights", type=click.Path(path_type=Path), help="torchvision .pth/.safetensors weights for ResNet teachers.")
@click.option("--random-teacher", is_flag=True, default=None, help="Use an untrained teacher (explicit opt-in).")
@click.option("--attention", help="Attention in the bottleneck blocks: none (plain RD), se (default), eca, cbam.")
@click.option("--image-size", type=int, help="Square model input in pixels (multiple of 32). [256]")
@click.option("--decoder-width", type=int, help="Student decoder channels as a multiple of the teacher's. [3]")
@click.option("--distillation/--no-distillation", default=None,
              help="Train the attention bottleneck and student decoder (ARD; RD with --attention none) as a score head. [off]")
@click.option("--bank-size", type=int, help="Memory-bank vectors on the teacher's taps; 0 for none. [16000]")
@click.option("--bank-augment", help="flip: the bank also covers the training images' mirror copies "
              "(left-right, up-down), for parts that appear mirrored; none (default).")
@click.option("--gaussian/--no-gaussian", default=None, help="Score the globally pooled taps' Mahalanobis distance. [on]")
@click.option("--gaussian-weight", type=float, help="Weight of the Gaussian's z-score in the fused score. [0.6]")
@click.option("--gaussian-fusion", help="How the Gaussian's weighted z-score joins the local map: max (default: "
              "a part fails on a local or a global defect) or sum (added to every pixel).")
@click.option("--gaussian-features", help="What the Gaussian pools from each tap: mean+std (default: the "
              "per-channel means and standard deviations) or mean.")
@click.option("--blur-sigma", type=float, help="Gaussian blur of the anomaly map before its maximum, pixels. [image size / 32]")
@click.option("--epochs", type=int, help="[10]")
@click.option("--batch-size", type=int, help="[16]")
@click.option("--lr", type=float, help="Adam learning rate. [0.005]")
@click.option("--seed", type=int, help="[0]")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="[cpu]")
@click.option("--false-reject-rate", type=float, help="Share of good parts allowed above the threshold. [0.005]")
@click.option("--resume", is_flag=True, help="Continue from OUT/train_state.pt.")
def train(config_file, resume, **options):
    """Train an ARD model on the good images of --data."""
    from ard_edge.config import from_dict, load_yaml
    from ard_edge.training import TrainConfig, train as run_training

    settings = load_yaml(config_file) if config_file else {}
    for key, value in options.items():
        if value is None:
            continue
        if key in _MODEL_OPTIONS:
            settings.setdefault("model", {})[key] = value
        else:
            settings[key] = str(value) if isinstance(value, Path) else value
    for required in ("data", "out"):
        if required not in settings:
            raise click.UsageError(f"--{required} is required (or set '{required}' in --config)")
    config = from_dict(TrainConfig, settings)

    progress = _TrainBars(config.epochs, _steps_per_epoch(config) if config.model.distillation else 0)
    try:
        result = run_training(config, resume, progress)
    finally:
        progress.close()
    state = "done" if result.completed else f"interrupted after {result.epochs_done} epochs (continue with --resume)"
    if config.model.distillation:
        click.echo(f"training {state} in {result.wall_s:.0f} s; final loss {result.final_loss:.4f}")
        click.echo(
            f"throughput: {result.train_images_per_s:.1f} images/s training steps, "
            f"{result.end_to_end_images_per_s:.1f} images/s including the teacher pass "
            f"({config.model.image_size} px, batch {config.batch_size}, {config.device})"
        )
    else:
        click.echo(f"training done in {result.wall_s:.0f} s: heads {', '.join(config.model.heads)} fitted "
                   "(no student; --distillation trains one)")
    click.echo(f"threshold {result.threshold:.4f} (false-reject rate {config.false_reject_rate:.2%} on held-out good images)")
    click.echo(f"checkpoint: {result.checkpoint}")
    if not result.completed:
        raise SystemExit(130)  # the conventional status of a run stopped by Ctrl-C


class _TrainBars:
    """Two tqdm bars, each drawn only once its phase starts (errors before that print alone)."""

    def __init__(self, epochs: int, steps_per_epoch: int):
        self.epochs, self.total_steps = epochs, epochs * steps_per_epoch
        self.features_bar = self.train_bar = self.coreset_bar = None
        self.epoch_shown = -1

    def features(self, done: int, total: int) -> None:
        if self.features_bar is None:
            self.features_bar = progress_bar(total, "teacher features", "img")
        self.features_bar.update(done - self.features_bar.n)

    def step(self, epoch: int, step: int, loss: float) -> None:
        if self.train_bar is None:
            if self.features_bar is not None:
                self.features_bar.close()
            self.train_bar = progress_bar(self.total_steps, "train", "batch", initial=epoch * (self.total_steps // self.epochs))
        if epoch != self.epoch_shown:
            self.epoch_shown = epoch
            self.train_bar.set_description(f"epoch {epoch + 1}/{self.epochs}", refresh=False)
        self.train_bar.update(1)
        self.train_bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def coreset(self, done: int, total: int) -> None:
        if self.coreset_bar is None:
            if self.train_bar is not None:
                self.train_bar.close()
            self.coreset_bar = progress_bar(total, "memory bank", "vec")
        self.coreset_bar.update(done - self.coreset_bar.n)

    def close(self) -> None:
        for bar in (self.features_bar, self.train_bar, self.coreset_bar):
            if bar is not None:
                bar.close()


def _steps_per_epoch(config) -> int:
    from ard_edge.training import count_train_images

    train_count = count_train_images(config.data, config.holdout_fraction)
    return -(-train_count // config.batch_size)


@click.command("eval")
@click.option("--model", "checkpoint", required=True, type=click.Path(path_type=Path), help="RUN_DIR/model.ckpt")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Dataset folder with test/ and ground_truth/.")
@click.option("--out", type=click.Path(path_type=Path), help="Write the report as JSON here.")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
def evaluate(checkpoint, data, out, batch_size, device):
    """Image AUROC, pixel AUROC, PRO and F1 at the stored threshold, per defect type."""
    from ard_edge._io import write_json
    from ard_edge.metrics import format_report_table
    from ard_edge.training.evaluate import evaluate as run_eval

    with progress_bar(total=None, desc="eval", unit="img") as bar:
        report = run_eval(checkpoint, data, batch_size, device, on_batch=bar.update)
    click.echo(format_report_table(report))
    if out:
        write_json(out, report)
        click.echo(f"report: {out}")
