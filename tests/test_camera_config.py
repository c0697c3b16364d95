"""ard-edge.yaml cameras section: the example file, dotted-key errors, range checks, aliases."""

from pathlib import Path

import pytest

from ard_edge.camera import CameraConfig, open_source, source_from_spec
from ard_edge.errors import CameraError, ConfigError
from ard_edge.runtime.config import AppConfig, load_app_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ard-edge.yaml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ard-edge.yaml"
    path.write_text(text)
    return path


def test_example_config_loads():
    app = load_app_config(EXAMPLE)
    assert list(app.cameras) == ["cam0", "line1"]
    cam0, line1 = app.cameras["cam0"], app.cameras["line1"]
    assert cam0.producer is None and cam0.pixel_format == "Mono8"
    assert (cam0.width, cam0.height, cam0.frame_rate_hz) == (640, 480, 100.0)
    assert line1.producer == Path("/opt/mvIMPACT_Acquire/lib/x86_64/mvGenTLProducer.cti")
    assert line1.trigger == "hardware" and line1.effective_trigger_source == "Line0"
    assert line1.pixel_format == "BayerRG8" and line1.roi == (320, 100, 1280, 1000)
    assert line1.timeout_s == 2.0


def test_unknown_key_names_the_dotted_path(tmp_path):
    path = _write(tmp_path, "cameras:\n  cam0:\n    frame_rat: 30\n")
    with pytest.raises(ConfigError, match=r"cameras\.cam0\.frame_rat: unknown key \(did you mean frame_rate\?\)"):
        load_app_config(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("width: 0", r"cameras\.cam0\.width: must be positive, got 0"),
        ("offset_x: -2", r"cameras\.cam0\.offset_x: must be >= 0"),
        ("frame_rate: -5", r"cameras\.cam0\.frame_rate: must be positive"),
        ("exposure_us: .nan", r"cameras\.cam0\.exposure_us: must be a finite number, got nan"),
        ("roi: [1, 2, 3]", r"cameras\.cam0\.roi: expected 4 values, got 3"),
        ("roi: [-1, 0, 10, 10]", r"cameras\.cam0\.roi: x and y must be >= 0"),
        ("roi: [0, 0, 0, 10]", r"cameras\.cam0\.roi: w and h must be positive"),
        ("{width: 100, roi: [50, 0, 60, 10]}", r"cameras\.cam0\.roi: x \+ w = 110 exceeds width 100"),
        ("roi: [0, 0, 1.5, 10]", r"cameras\.cam0\.roi\[2\]: expected int"),
        ("num_buffers: 0", r"cameras\.cam0\.num_buffers: must be >= 1"),
        ("timeout_ms: 0", r"cameras\.cam0\.timeout_ms: must be positive"),
        ("trigger: sometimes", r"cameras\.cam0\.trigger: 'sometimes' is not one of free_run, software, hardware"),
        ("trigger_source: Line1", r"cameras\.cam0\.trigger_source: only used with trigger: hardware"),
        ("pixel_format: YUV422_8", r"cameras\.cam0\.pixel_format: 'YUV422_8' is not supported; use one of Mono8"),
        ("serial: 22012345", r"cameras\.cam0\.serial: expected str, got 22012345"),
        ("{serial: '1', index: 0}", r"cameras\.cam0: set only one of serial, user_name, index \(got serial and"),
        ("producer: /opt/x/libfoo.so", r"cameras\.cam0\.producer: a GenTL producer is a \.cti file"),
    ],
)
def test_bad_values_name_the_key(tmp_path, body, message):
    if body.startswith("{"):
        path = _write(tmp_path, f"cameras:\n  cam0: {body}\n")
    else:
        path = _write(tmp_path, f"cameras:\n  cam0:\n    {body}\n")
    with pytest.raises(ConfigError, match=message):
        load_app_config(path)


def test_hardware_trigger_accepts_a_source(tmp_path):
    path = _write(tmp_path, "cameras:\n  cam0: {trigger: hardware, trigger_source: Line2}\n")
    assert load_app_config(path).cameras["cam0"].effective_trigger_source == "Line2"


def test_alias_cannot_look_like_a_replay_spec(tmp_path):
    path = _write(tmp_path, "cameras:\n  'folder:x': {}\n")
    with pytest.raises(ConfigError, match=r"cameras\.folder:x: a camera alias must be a non-empty name without ':'"):
        load_app_config(path)


def test_default_path_is_optional(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_app_config(None) == AppConfig()
    _write(tmp_path, "cameras:\n  top: {serial: 'A1'}\n")
    assert load_app_config(None).cameras["top"].serial == "A1"


def test_explicit_path_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_app_config(tmp_path / "missing.yaml")


def test_empty_file_is_an_empty_config(tmp_path):
    assert load_app_config(_write(tmp_path, "# nothing yet\n")) == AppConfig()


def test_unknown_alias_lists_the_configured_ones():
    cameras = {"cam0": CameraConfig(), "cam1": CameraConfig()}
    with pytest.raises(CameraError) as info:
        open_source("camX", cameras)
    assert str(info.value) == "unknown camera 'camX': configured aliases are cam0, cam1 (see ard-edge.yaml)"


@pytest.mark.parametrize(("spec", "message"), [("rtsp://cam", r"unknown source 'rtsp://cam'"),
                                               ("folder:", r"missing path after 'folder:'")])
def test_bad_source_specs(spec, message):
    with pytest.raises(CameraError, match=message):
        source_from_spec(spec, {})


def test_missing_producer_names_the_path(tmp_path):
    missing = tmp_path / "vendor" / "Producer.cti"
    with pytest.raises(CameraError, match=f"GenTL producer not found: {missing}"):
        open_source("cam0", {"cam0": CameraConfig(producer=missing)})
