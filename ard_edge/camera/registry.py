"""Resolve a source spec (``folder:PATH``, ``video:PATH`` or a camera alias) to an open source."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ard_edge.camera.config import CameraConfig
from ard_edge.camera.frames import FrameSource
from ard_edge.camera.genicam import GenICamCamera
from ard_edge.camera.replay import FolderReplay, VideoReplay
from ard_edge.errors import CameraError

log = logging.getLogger(__name__)

REPLAY_KINDS = {"folder": FolderReplay, "video": VideoReplay}


def source_from_spec(
    spec: str,
    cameras: Mapping[str, CameraConfig] | None = None,
    fps: float | None = None,
    loop: bool = False,
) -> FrameSource:
    """Build (not open) the source ``spec`` names; see :func:`open_source`."""
    kind, colon, rest = spec.partition(":")
    if colon:
        if kind not in REPLAY_KINDS:
            raise CameraError(f"unknown source {spec!r}: use folder:PATH, video:PATH or a camera alias")
        if not rest:
            raise CameraError(f"{spec!r}: missing path after '{kind}:'")
        return REPLAY_KINDS[kind](rest, name=spec, fps=fps, loop=loop)
    if fps is not None or loop:
        log.debug("%s: fps and loop apply to replay sources only; ignored for a camera", spec)
    if cameras:
        if spec not in cameras:
            raise CameraError(
                f"unknown camera {spec!r}: configured aliases are {', '.join(cameras)} (see ard-edge.yaml)"
            )
        return GenICamCamera(cameras[spec], name=spec)
    # No cameras configured: any alias means "the first device the producers can see".
    return GenICamCamera(CameraConfig(), name=spec)


def open_source(
    spec: str,
    cameras: Mapping[str, CameraConfig] | None = None,
    fps: float | None = None,
    loop: bool = False,
) -> FrameSource:
    """Open a frame source.

    Args:
        spec: ``folder:PATH`` (images in sorted order), ``video:PATH``, or a camera alias from
            ``cameras``. With no cameras configured, any alias (e.g. ``cam0``) opens the first
            GenICam device found.
        cameras: the ``cameras:`` section of ard-edge.yaml.
        fps: replay pacing in frames per second; None replays as fast as fetched.
        loop: replay only: start over at the end instead of raising EndOfStream.

    Returns:
        The opened source; use it as a context manager to close it.

    Raises:
        CameraError: unknown alias or scheme, missing producer or file, no device found.
    """
    return source_from_spec(spec, cameras, fps=fps, loop=loop).open()
