"""Frame sources: GenICam cameras (harvesters) and folder/video replays, one interface.

``import ard_edge.camera`` does not load harvesters; opening a camera does.

Example::

    from ard_edge.camera import open_source

    with open_source("cam0", app_config.cameras) as cam:
        frame = cam.fetch(timeout_s=1.0)
"""

from ard_edge.camera.config import CameraConfig
from ard_edge.camera.frames import Frame, FrameSource
from ard_edge.camera.genicam import GenICamCamera, find_producers, list_devices, select_device, simulator_producer
from ard_edge.camera.pixel_formats import SUPPORTED_PIXEL_FORMATS, image_from_buffer, image_from_component
from ard_edge.camera.registry import open_source, source_from_spec
from ard_edge.camera.replay import FolderReplay, VideoReplay
from ard_edge.errors import CameraDisconnected, CameraError, CameraTimeout, EndOfStream

__all__ = [
    "SUPPORTED_PIXEL_FORMATS",
    "CameraConfig",
    "CameraDisconnected",
    "CameraError",
    "CameraTimeout",
    "EndOfStream",
    "FolderReplay",
    "Frame",
    "FrameSource",
    "GenICamCamera",
    "VideoReplay",
    "find_producers",
    "image_from_buffer",
    "image_from_component",
    "list_devices",
    "open_source",
    "select_device",
    "simulator_producer",
    "source_from_spec",
]
