"""Atomic file writes (an artifact is either complete or absent, never half-written), output
folders that say why they cannot be written, strict JSON, and the one-run-per-folder lock."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ard_edge.errors import OutputError

BYTES_PER_MB = 1_000_000  # sizes shown and configured in MB are decimal, as disks count them


# An OSError inside an atomic write with one of these means the disk, not the input, failed.
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
LOCK_NAME = ".ard-edge.lock"


def ensure_folder(path: str | os.PathLike) -> Path:
    """``path`` as an existing folder (created when missing), or OutputError saying why it cannot be."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise OutputError(f"{path} exists and is not a folder") from exc
    except OSError as exc:
        raise OutputError(f"cannot create the folder {path}: {exc.strerror or exc}") from exc
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary file is created with mode 0o666 minus the umask, as ``open`` would, and its
    name holds this process's id, so a later write of the same file removes the leftovers of a
    writer that was killed (see :func:`remove_stale_temps`).
    """
    path = Path(path)
    ensure_folder(path.parent)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name")
    remove_stale_temps(path.parent, path.name)
    tmp_path = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.errno in _DISK_FULL or exc.filename in (str(tmp_path), str(path)):
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp")  # what atomic_path creates


def remove_stale_temps(folder: str | os.PathLike, name: str | None = None) -> int:
    """Delete the temporary files of atomic writes in ``folder`` (of ``name`` only, if given) whose
    writer process is gone, as after a kill -9; return how many."""
    try:
        candidates = list(Path(folder).iterdir())
    except OSError:
        return 0  # missing or unlistable: the write itself will say what is wrong
    removed = 0
    for candidate in candidates:
        match = _TEMP_NAME.fullmatch(candidate.name)
        if match and name in (None, match["name"]) and not _process_alive(int(match["pid"])):
            candidate.unlink(missing_ok=True)
            removed += 1
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive ``flock`` on ``folder/.ard-edge.lock`` (created) while the block runs.

    The kernel drops the lock when the process ends, however it ends, so a crashed run never
    leaves the folder locked; the file keeps the holder's pid for the message of the next one.

    Raises:
        OutputError: another process holds the lock (the message names its pid), or the folder
            cannot be created.
    """
    import fcntl

    folder = ensure_folder(folder)
    lock_path = folder / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise OutputError(f"cannot write {lock_path}: {exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise OutputError(f"{folder} is in use by another ard-edge run (pid {holder}):"
                              " stop it or give this run its own --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield lock_path
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; rename it onto ``path`` on success."""
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities (no samples, no ratio) as None, so the JSON stays standard."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as strict JSON (no NaN/Infinity tokens: they become null), atomically."""
    with atomic_open(path) as handle:
        json.dump(json_safe(data), handle, indent=2, sort_keys=True, allow_nan=False)
        handle.write("\n")


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
