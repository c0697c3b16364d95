"""``ard-edge cameras``: the GenICam devices this machine sees and what each configured alias opens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ard_edge.camera.config import CameraConfig
from ard_edge.camera.genicam import describe_device, list_devices, select_device
from ard_edge.errors import CameraError
from ard_edge.runtime.config import load_app_config


@click.command("cameras")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="ard-edge.yaml to read (default: ./ard-edge.yaml when present).",
)
def cameras(config_path: Path | None) -> None:
    """List GenICam cameras and configured aliases."""
    app = load_app_config(config_path)
    # Devices behind the default producers, plus those behind each producer (or the simulator) a camera names.
    producers: list[tuple[Path | None, bool]] = [(None, False)]
    producers += sorted({_producer(c) for c in app.cameras.values() if _producer(c) != (None, False)}, key=str)
    listings = {producer: _list(*producer) for producer in producers}

    devices: dict[tuple[Any, Any], dict[str, Any]] = {}
    for listing in listings.values():
        for device in listing if isinstance(listing, list) else []:
            devices.setdefault((device["producer"], device["id"], device["serial"]), device)
    _print_devices(list(devices.values()))
    for listing in listings.values():
        if isinstance(listing, CameraError):
            click.echo(f"  ({listing})")

    click.echo("")
    if not app.cameras:
        click.echo("No camera aliases configured; any alias (e.g. cam0) opens the first device listed.")
        return
    click.echo("Aliases:")
    for alias, config in app.cameras.items():
        click.echo(f"  {alias:<10} {_wanted(config):<24} -> {_resolve(config, listings.get(_producer(config)), alias)}")


def _producer(config: CameraConfig) -> tuple[Path | None, bool]:
    return config.producer, config.simulator


def _list(producer: Path | None, simulator: bool) -> list[dict[str, Any]] | CameraError:
    try:
        return list_devices(producer, simulator)
    except CameraError as exc:
        return exc


def _print_devices(devices: list[dict[str, Any]]) -> None:
    if not devices:
        click.echo("No GenICam devices found.")
        return
    header = ("vendor", "model", "serial", "producer")
    rows = [(str(d["vendor"]), str(d["model"]), str(d["serial"]), Path(d["producer"] or "?").name) for d in devices]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _wanted(config: CameraConfig) -> str:
    """What the alias asks for, in the config's words."""
    if config.serial is not None:
        return f"serial {config.serial}"
    if config.user_name is not None:
        return f"user_name {config.user_name}"
    if config.index is not None:
        return f"index {config.index}"
    return "first device"


def _resolve(config: CameraConfig, listing: list[dict[str, Any]] | CameraError | None, alias: str) -> str:
    if isinstance(listing, CameraError):
        return f"not available: {listing}"
    try:
        device = listing[select_device(listing or [], config, alias)]
    except CameraError as exc:
        return f"not available: {exc}"
    return f"{describe_device(device)} via {Path(device['producer'] or '?').name}"
