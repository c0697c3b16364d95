"""Folder and video replay: order, colour handling, looping, end of stream, pacing."""

import time

import cv2
import numpy as np
import pytest

from ard_edge.camera import EndOfStream, FolderReplay, VideoReplay, open_source
from ard_edge.errors import CameraError, CameraTimeout

RED = (220, 30, 10)  # RGB


@pytest.fixture
def folder(tmp_path):
    """b.png grey, a.png red, c.png 16-bit grey, plus a file that is not an image."""
    grey = np.full((8, 10), 77, np.uint8)
    red = np.zeros((8, 10, 3), np.uint8)
    red[:] = RED
    cv2.imwrite(str(tmp_path / "b.png"), grey)
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(red, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "c.png"), np.full((8, 10), 0x1234, np.uint16))
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_folder_replays_sorted_files_with_their_colour_model(folder):
    with open_source(f"folder:{folder}", {}) as source:
        frames = [source.fetch() for _ in range(3)]
        with pytest.raises(EndOfStream, match="end of stream after 3 frame"):
            source.fetch()
        assert source.stats["frames"] == 3
    assert [f.source for f in frames] == [str(folder / n) for n in ("a.png", "b.png", "c.png")]
    assert [f.frame_id for f in frames] == [1, 2, 3]
    assert frames[0].image.shape == (8, 10, 3) and tuple(frames[0].image[0, 0]) == RED
    assert frames[0].pixel_format == "RGB8" and frames[1].pixel_format == "Mono8"
    assert frames[1].image.shape == (8, 10, 1) and frames[1].image[0, 0, 0] == 77
    assert frames[2].image.dtype == np.uint8 and frames[2].image[0, 0, 0] == round(0x1234 / 257)  # data.read_image's 16-bit rule
    assert frames[0].camera == f"folder:{folder}"
    assert issubclass(EndOfStream, CameraError)


def test_folder_loop_starts_over(folder):
    with FolderReplay(folder, loop=True) as source:
        frames = [source.fetch() for _ in range(7)]
    assert [f.source.rsplit("/", 1)[1] for f in frames] == ["a.png", "b.png", "c.png"] * 2 + ["a.png"]
    assert [f.frame_id for f in frames] == list(range(1, 8))


def test_fps_paces_frames_and_times_out(folder):
    with FolderReplay(folder, fps=50, loop=True) as source:
        start = time.monotonic()
        for _ in range(4):
            source.fetch()
        assert time.monotonic() - start >= 3 / 50 - 0.005
    with FolderReplay(folder, fps=2) as slow:
        slow.fetch()
        with pytest.raises(CameraTimeout, match="next frame due"):
            slow.fetch(timeout_s=0.01)
        assert slow.stats["timeouts"] == 1


def test_folder_errors(tmp_path):
    with pytest.raises(CameraError, match="no such folder"):
        FolderReplay(tmp_path / "nope").open()
    with pytest.raises(CameraError, match="no images"):
        FolderReplay(tmp_path).open()
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with FolderReplay(tmp_path, loop=True) as source:  # an unreadable file is a frame without image, not the end
        first, second = source.fetch(), source.fetch()
    assert first.error is not None and "cannot decode" in first.error and first.source.endswith("broken.png")
    assert first.image.size == 0 and second.error == first.error and second.frame_id == 2


def test_closed_source_refuses_fetch_and_closes_twice(folder):
    source = FolderReplay(folder)
    with pytest.raises(CameraError, match="not open"):
        source.fetch()
    source.open()
    source.close()
    source.close()
    assert source.trigger_mode == "free_run"
    with pytest.raises(CameraError, match="trigger: software"):
        source.trigger()


@pytest.fixture
def video(tmp_path):
    """Five 32x24 MJPG frames: solid red, green, blue, red, green."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
    assert writer.isOpened()
    for k in range(5):
        rgb = np.zeros((24, 32, 3), np.uint8)
        rgb[..., k % 3] = 200
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_video_replays_rgb_frames_then_ends(video):
    with open_source(f"video:{video}", {}) as source:
        frames = [source.fetch() for _ in range(5)]
        with pytest.raises(EndOfStream):
            source.fetch()
    assert all(f.image.shape == (24, 32, 3) and f.pixel_format == "RGB8" for f in frames)
    # MJPG is lossy: check which channel dominates, which catches a BGR/RGB swap.
    assert [int(np.argmax(f.image.reshape(-1, 3).mean(0))) for f in frames] == [0, 1, 2, 0, 1]
    assert [f.source for f in frames] == [f"{video}#{k}" for k in range(5)]
    assert frames[1].timestamp_ns == 100_000_000  # 10 fps file: frame 1 at 100 ms


def test_video_loops(video):
    with VideoReplay(video, loop=True) as source:
        frames = [source.fetch() for _ in range(7)]
    assert frames[6].source == f"{video}#1" and frames[6].frame_id == 7


def test_video_errors(tmp_path):
    with pytest.raises(CameraError, match="no such video file"):
        VideoReplay(tmp_path / "none.avi").open()
    bogus = tmp_path / "bogus.avi"
    bogus.write_bytes(b"\x00" * 64)
    with pytest.raises(CameraError, match="cannot decode"):
        VideoReplay(bogus).open()
