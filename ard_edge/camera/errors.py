"""Camera leaves of the :mod:`ard_edge.errors` tree.

    CameraError                  (ard_edge.errors)
    ├── CameraTimeout            (ard_edge.errors) no frame within the timeout
    ├── CameraDisconnected       the device went away; fetch keeps trying to reopen it
    └── EndOfStream              a replay source has no more frames
"""

from __future__ import annotations

from ard_edge.errors import CameraError


class CameraDisconnected(CameraError):
    """The device is gone; later ``fetch`` calls reopen it with exponential backoff."""


class EndOfStream(CameraError):
    """A folder or video replay ran out of frames and is not looping."""
