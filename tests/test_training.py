"""Training and evaluation end to end on a small synthetic dataset, through the CLI."""

import contextlib
import io
import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from ard_edge.data import DEFECT_TYPES, write_synthetic_dataset
from ard_edge.model import read_metadata

ARD = [sys.executable, "-m", "ard_edge"]
# The distillation student: the part of the model that training trains.
TRAIN = ["--image-size", "64", "--batch-size", "8", "--seed", "3", "--distillation"]


def ard_edge(*args, check=True):
    """Run the CLI in this process (no interpreter start-up per call); return code and output."""
    from ard_edge.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(map(str, args)))
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
    result = subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"exit {code}: {result.stderr[-2000:]}")
    return result


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    write_synthetic_dataset(root, num_train=24, num_test=12, image_size=64, seed=1)
    return root


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "a"
    result = ard_edge("train", "--data", dataset, "--out", run, "--epochs", "2", *TRAIN)
    return run, result.stdout


def test_train_writes_a_checkpoint_with_threshold_and_metadata(trained, dataset):
    run, stdout = trained
    header = read_metadata(run / "model.ckpt")
    assert header["model"]["backbone"] == "efficientnet_lite2" and header["model"]["image_size"] == 64
    assert header["threshold"] >= header["score_stats"]["min"]
    assert header["score_stats"]["count"] == 2  # 10% of 24 good images held out
    assert header["training"]["completed"] and header["training"]["epochs_done"] == 2
    assert len(header["data_fingerprint"]) == 64 and header["versions"]["torch"] == torch.__version__
    assert "images/s" in stdout and "threshold" in stdout


def test_same_seed_same_weights(trained, dataset, tmp_path):
    run, _ = trained
    ard_edge("train", "--data", dataset, "--out", tmp_path / "b", "--epochs", "2", *TRAIN)
    a, b = load_file(str(run / "model.ckpt")), load_file(str(tmp_path / "b" / "model.ckpt"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_continues_to_the_requested_epochs(trained, dataset, tmp_path):
    run, _ = trained
    ard_edge("train", "--data", dataset, "--out", tmp_path / "r", "--epochs", "1", *TRAIN)
    ard_edge("train", "--data", dataset, "--out", tmp_path / "r", "--epochs", "2", "--resume", *TRAIN)
    resumed = load_file(str(tmp_path / "r" / "model.ckpt"))
    straight = load_file(str(run / "model.ckpt"))
    assert all(torch.allclose(resumed[k].float(), straight[k].float(), atol=1e-5) for k in straight)


def test_ctrl_c_leaves_a_usable_checkpoint(dataset, tmp_path):
    # A real process and a real SIGINT: the interrupt must land inside the training loop.
    run = tmp_path / "interrupted"
    # A shell starts background jobs with SIGINT ignored, and Python then installs no handler for
    # it: give the child the default disposition, as a terminal would.
    process = subprocess.Popen([*ARD, "train", "--data", dataset, "--out", run, "--epochs", "500", *TRAIN],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (run / "train_state.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "--resume" in stdout
    header = read_metadata(run / "model.ckpt")
    assert not header["training"]["completed"]


def test_eval_reports_the_field_metrics(trained, dataset, tmp_path):
    run, _ = trained
    result = ard_edge("eval", "--model", run / "model.ckpt", "--data", dataset, "--out", tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    for key in ("image_auroc", "pixel_auroc", "pro"):
        assert 0.0 <= report["overall"][key] <= 1.0
    assert set(report["per_type"]) <= set(DEFECT_TYPES) and "scratch" in report["per_type"]
    for row in (report["overall"], *report["per_type"].values()):
        assert 0.0 <= row["recall"] <= 1.0 and 0.0 <= row["recall_at_1pct_frr"] <= 1.0
    assert "image AUROC" in result.stdout and "recall@1%FRR" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "0"], "epochs: must be >= 1"),
        (["--attention", "transformer"], "model.attention: choose one of"),
        (["--backbone", "resnet18"], "--teacher-weights"),
    ],
)
def test_bad_training_input_gets_one_line(dataset, tmp_path, args, message):
    result = ard_edge("train", "--data", dataset, "--out", tmp_path / "x", *args, check=False)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_config_key_is_named(dataset, tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(f"data: {dataset}\nout: {tmp_path / 'x'}\nmodel:\n  atention: se\n")
    result = ard_edge("train", "--config", config, check=False)
    assert result.returncode == 2
    assert "model.atention: unknown key (did you mean attention?)" in result.stderr


def test_missing_data_folder_is_named(tmp_path):
    result = ard_edge("train", "--data", tmp_path / "nowhere", "--out", tmp_path / "x", check=False)
    assert result.returncode == 1 and "nowhere" in result.stderr and "Traceback" not in result.stderr
