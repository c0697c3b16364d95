"""A cheap identity for a dataset folder, stored with models to tell which data made them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ard_edge.errors import DataError

FINGERPRINTED_DIRS = ("train", "test")


def data_fingerprint(root: str | os.PathLike) -> str:
    """SHA-256 hex digest of the sorted relative paths and byte sizes of all files in train/ and test/.

    No pixel is read, so it takes milliseconds; renaming, adding, removing or resizing a file
    changes it, editing pixels in place without changing the size does not.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset root not found: {root}")
    entries = []
    for top in FINGERPRINTED_DIRS:
        for directory, _, files in os.walk(root / top):
            for name in files:
                path = Path(directory, name)
                entries.append((path.relative_to(root).as_posix(), path.stat().st_size))
    digest = hashlib.sha256()
    for relative_path, size_bytes in sorted(entries):
        # NUL cannot occur in a path, so the encoding is unambiguous.
        digest.update(f"{relative_path}\0{size_bytes}\n".encode())
    return digest.hexdigest()
