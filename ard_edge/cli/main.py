"""The ``ard-edge`` command. Subcommands load lazily so ``ard-edge --help`` starts fast."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from ard_edge._version import __version__
from ard_edge.errors import ArdEdgeError

# name -> (module:attribute, one-line help); help text lives here so --help imports nothing heavy.
COMMANDS = {
    "synth": ("ard_edge.cli.data_cmds:synth", "Write a synthetic inspection dataset (MVTec AD layout)."),
    "train": ("ard_edge.cli.train_cmds:train", "Train an ARD model on good images."),
    "eval": ("ard_edge.cli.train_cmds:evaluate", "Measure image/pixel AUROC, PRO and F1 of a model."),
    "export": ("ard_edge.cli.export_cmds:export", "Export a checkpoint to one fused ONNX graph."),
    "calibrate": ("ard_edge.cli.calibrate_cmds:calibrate", "Quantize an ONNX model to INT8 (Q/DQ) behind an accuracy gate."),
    "build-engine": ("ard_edge.cli.engine_cmds:build_engine", "Build a TensorRT or ONNX Runtime engine."),
    "predict": ("ard_edge.cli.predict_cmds:predict", "Score image files with an engine; write heatmaps."),
    "cameras": ("ard_edge.cli.camera_cmds:cameras", "List GenICam cameras and configured aliases."),
    "capture": ("ard_edge.cli.capture_cmds:capture", "Save camera frames as PNG training images with a manifest."),
    "run": ("ard_edge.cli.run_cmds:run", "Stream camera frames to PASS/FAIL decisions."),
    "bench": ("ard_edge.cli.bench_cmds:bench", "Measure engine latency and throughput."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        target, _ = COMMANDS[name]
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, help_text) for name, (_, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ard-edge")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """ard-edge: anomaly detection from training to the production line."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="ard-edge", standalone_mode=False)
    except ArdEdgeError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:  # one line, as for our own errors; --help shows the usage
        click.secho(f"error: {exc.format_message()}", fg="red", err=True)
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
