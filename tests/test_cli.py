"""The command surface: light imports, every subcommand's help, predict and the example script."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ard_edge.cli.main import COMMANDS
from _models import exported_onnx, random_frames

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "onnxruntime", "openvino", "tensorrt", "pycuda", "harvesters", "genicam", "cv2", "sklearn", "tritonclient",
         "grpc", "paho", "asyncua", "httpx", "uvicorn", "prometheus_client")


def run(*args, **kwargs):
    return subprocess.run([*map(str, args)], capture_output=True, text=True, cwd=ROOT, **kwargs)


def test_import_and_help_load_no_heavy_module():
    code = (
        "import sys, ard_edge, ard_edge.camera, ard_edge.engines\n"
        "from ard_edge.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = run(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert "build-engine" in result.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command):
    result = run(sys.executable, "-m", "ard_edge", command, "-h")
    assert result.returncode == 0, result.stderr
    assert "Usage: ard-edge " + command in result.stdout


def test_unknown_command_is_a_usage_error():
    result = run(sys.executable, "-m", "ard_edge", "trian")
    assert result.returncode == 2 and "No such command" in result.stderr


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for i, frame in enumerate(random_frames(3, size=80, channels=1)):
        cv2.imwrite(str(folder / f"part{i}.png"), frame[..., 0])
    return folder


def test_predict_writes_decisions_and_heatmaps(tmp_path_factory, images, tmp_path):
    onnx_path = exported_onnx(tmp_path_factory, channels=1)
    result = run(sys.executable, "-m", "ard_edge", "predict", "--engine", onnx_path, images, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [Path(p["path"]).name for p in lines] == ["part0.png", "part1.png", "part2.png"]
    for line in lines:
        assert line["verdict"] in ("PASS", "FAIL")
        assert (line["verdict"] == "FAIL") == (line["score"] > 1.0)  # the export's threshold
        heatmap = cv2.imread(line["heatmap"])
        assert heatmap.shape == (64, 64, 3)
    assert "3 images:" in result.stdout


def test_predict_bad_input_is_one_line(tmp_path_factory, tmp_path):
    onnx_path = exported_onnx(tmp_path_factory, channels=1)
    result = run(sys.executable, "-m", "ard_edge", "predict", "--engine", onnx_path, tmp_path / "nothing.png")
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: input not found: {tmp_path / 'nothing.png'}"


def test_example_script_reads_the_verdict(tmp_path_factory, images):
    onnx_path = exported_onnx(tmp_path_factory, channels=1)
    result = run(sys.executable, "examples/inspect_image.py", onnx_path, images / "part0.png")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(("PASS", "FAIL")) and "hottest pixel" in result.stdout
