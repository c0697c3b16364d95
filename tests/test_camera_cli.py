"""``ard-edge cameras``: device table and alias resolution, on the viky simulator."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from ard_edge.camera import simulator_producer
from ard_edge.cli.main import cli, main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ard-edge.yaml"

pytestmark = pytest.mark.skipif(simulator_producer() is None, reason="the installed genicam package has no viky.cti")


@pytest.fixture(autouse=True)
def no_producer_path(monkeypatch):
    monkeypatch.delenv("GENICAM_GENTL64_PATH", raising=False)


def test_cameras_lists_devices_and_resolves_aliases():
    result = CliRunner().invoke(cli, ["cameras", "--config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    table = lines[: lines.index("")]
    assert table[0].split() == ["vendor", "model", "serial", "producer"]
    assert sum("Viky" in line and "viky.cti" in line for line in table) == 3
    cam0 = next(line for line in lines if line.strip().startswith("cam0"))
    assert "serial 0" in cam0 and "-> Machine Vision Games Ltd. Viky (serial 0) via viky.cti" in cam0
    line1 = next(line for line in lines if line.strip().startswith("line1"))
    assert "not available: GenTL producer not found: /opt/mvIMPACT_Acquire" in line1


def test_cameras_without_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["cameras"])
    assert result.exit_code == 0, result.output
    assert "No camera aliases configured" in result.output


def test_config_error_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "ard-edge.yaml"
    bad.write_text("cameras:\n  cam0:\n    frame_rat: 30\n")
    with pytest.raises(SystemExit) as info:
        main(["cameras", "--config", str(bad)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "cameras.cam0.frame_rat: unknown key (did you mean frame_rate?)" in err
    assert "Traceback" not in err
