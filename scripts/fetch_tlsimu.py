#!/usr/bin/env python3
"""Fetch the TLSimu GenTL simulator (TLSimu.cti + libVirtualFG.so) from the genicam 1.5.0 wheel.

genicam 1.6 ships only viky.cti, which has no trigger features; TLSimu (dropped after 1.5.0)
has TriggerMode/TriggerSource/TriggerSoftware, so the software-trigger test needs it.
The files land in ~/.cache/ard-edge/genicam-1.5.0 (or --dest); the script prints the .cti path.

    python scripts/fetch_tlsimu.py            # exit 0 and print the path, or exit 1
    python scripts/fetch_tlsimu.py --quiet    # same, printing only a failure (make test)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "1.5.0"
DEFAULT_DEST = Path.home() / ".cache" / "ard-edge" / f"genicam-{VERSION}"
PRODUCER = "TLSimu.cti"
# TLSimu.cti loads its frame grabber library from its own directory ($ORIGIN rpath).
MEMBERS = (PRODUCER, "libVirtualFG.so", "VirtualFG.dll", "libVirtualFG.dylib")


def fetch(dest: Path = DEFAULT_DEST) -> Path:
    """Return ``dest/TLSimu.cti``, downloading and extracting the wheel when it is missing."""
    producer = dest / PRODUCER
    if producer.is_file():
        return producer
    with tempfile.TemporaryDirectory(prefix="ard-edge-genicam-") as tmp:
        wheel = _download(Path(tmp))
        staging = Path(tmp) / "extract"
        staging.mkdir()
        _extract(wheel, staging)
        dest.mkdir(parents=True, exist_ok=True)
        # Move the producer last: its presence is what marks the cache complete.
        for path in sorted(staging.iterdir(), key=lambda p: p.name == PRODUCER):
            os.chmod(path, 0o755)
            shutil.move(str(path), dest / path.name)
    return producer


def _download(directory: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--dest", str(directory), f"genicam=={VERSION}"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"pip download genicam=={VERSION} failed: {last}")
    wheels = sorted(directory.glob(f"genicam-{VERSION}-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download left no genicam-{VERSION} wheel in {directory}")
    return wheels[0]


def _extract(wheel: Path, directory: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        members = [name for name in archive.namelist() if Path(name).name in MEMBERS]
        if not any(Path(name).name == PRODUCER for name in members):
            raise RuntimeError(f"{wheel.name} holds no {PRODUCER}")
        for name in members:  # flatten: the wheel nests them under genicam-1.5.0.data/purelib/
            (directory / Path(name).name).write_bytes(archive.read(name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help=f"cache directory (default {DEFAULT_DEST})")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)
    try:
        producer = fetch(args.dest)
    except (OSError, RuntimeError, zipfile.BadZipFile) as exc:
        # One line: the software-trigger test then skips and says how to get TLSimu.
        print(f"fetch_tlsimu: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(producer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
