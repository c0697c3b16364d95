"""The accuracy benchmark scripts (benchmarks/accuracy/): helpers fast, end to end on tiny data (slow)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _load(name: str):
    sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(f"accuracy_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(SCRIPTS / script), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_read_idx_gz_and_plain(tmp_path):
    fm = _load("fashion_mnist")
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape) + images.tobytes()
    (tmp_path / "x-idx3-ubyte").write_bytes(raw)
    with gzip.open(tmp_path / "y-idx3-ubyte.gz", "wb") as handle:
        handle.write(raw)
    np.testing.assert_array_equal(fm.read_idx(tmp_path / "x-idx3-ubyte"), images)
    np.testing.assert_array_equal(fm.read_idx(tmp_path / "y-idx3-ubyte.gz"), images)
    (tmp_path / "bad").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="header says"):
        fm.read_idx(tmp_path / "bad")


def test_write_section_replaces_its_own_and_keeps_order(tmp_path):
    common = _load("_common")
    md = tmp_path / "results.md"
    md.write_text("# Results\n\nIntro by hand.\n\n## Other\n\nkept\n")
    common.write_section(md, "## One-class novelty detection: Fashion-MNIST", "fm v1")
    common.write_section(md, "## Surface defects: magnetic tile", "mt v1")
    common.write_section(md, "## One-class novelty detection: Fashion-MNIST", "fm v2")
    text = md.read_text()
    assert text.startswith("# Results\n\nIntro by hand.")
    assert "fm v1" not in text and "kept" in text
    assert text.index("mt v1") < text.index("fm v2")


@pytest.mark.slow
def test_fashion_mnist_smoke_runs_and_resumes(tmp_path):
    if not (FASHION_MNIST / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST missing: apt-get install -y dataset-fashion-mnist")
    args = ["--smoke", "--attention", "cbam", "--work", str(tmp_path / "data"), "--runs", str(tmp_path / "runs"),
            "--results-md", str(tmp_path / "results.md"), "--json", str(tmp_path / "fm.json")]
    _run("fashion_mnist.py", *args)
    summary = json.loads((tmp_path / "fm.json").read_text())
    pairs = {(r["class"], r["attention"]) for r in summary["results"]}
    assert pairs == {(c, v) for c in (0, 1) for v in ("none", "cbam", "default")}
    assert all(0.0 <= r["image_auroc"] <= 1.0 for r in summary["results"])
    assert summary["settings"]["num_test"] == 200
    text = (tmp_path / "results.md").read_text()
    assert "## One-class novelty detection: Fashion-MNIST" in text and "efficientnet_lite2" in text
    assert "| 1 Trouser |" in text and "**mean**" in text and "default model" in text

    again = _run("fashion_mnist.py", *args)
    assert again.count("reusing") == 6 and "ard-edge train" not in again


@pytest.mark.slow
def test_magnetic_tile_smoke_on_synthetic_data(tmp_path):
    mt = _load("magnetic_tile")
    work = tmp_path / "work"
    _run("magnetic_tile.py", "--smoke", "--work", str(work))
    summary = json.loads((work / "magnetic_tile.json").read_text())
    assert [v["attention"] for v in summary["variants"]] == ["default", "none", "cbam"]
    assert all(v["status"] == "done" for v in summary["variants"])
    assert all(v["training"]["epochs"] == 1 for v in summary["variants"][1:])
    assert summary["variants"][0]["model"]["distillation"] is False
    # A 1-epoch 32 px model may or may not pass the INT8 gate; either outcome must be reported.
    status = summary["int8"]["status"]
    assert status in ("done", "refused by the calibration accuracy gate"), status
    text = (work / "results.md").read_text()
    assert "## Surface defects: magnetic tile" in text and "Pixel AUROC" in text and "cores" in text
    assert "Recall at a 1% false-reject rate" in text and "| **overall** |" in text
    assert ("INT8 of the default model, `ard-edge calibrate" in text) if status == "done" else (
        "accuracy gate: REFUSED" in text)

    # The engine path of the INT8 evaluation, on the FP32 export: it must agree with ard-edge eval.
    report = mt.engine_report(work / "best.onnx", work / "synth", threads=1)
    expected = json.loads((work / "runs" / "default" / "report.json").read_text())
    assert report["overall"]["image_auroc"] == pytest.approx(expected["overall"]["image_auroc"], abs=0.03)

    again = _run("magnetic_tile.py", "--smoke", "--work", str(work), "--no-train", "--skip-int8")
    assert again.count("reusing") == 3


def test_fold_sweep_ranks_variants_on_every_fold_and_scores_the_test_set_on_fold_0(tmp_path):
    data = tmp_path / "synth"
    subprocess.run([str(Path(sys.executable).with_name("ard-edge")), "synth", str(data), "--num-train", "20",
                    "--num-test", "6", "--image-size", "64", "--seed", "0"], check=True, capture_output=True)
    out = tmp_path / "sweep.json"
    _run("fold_sweep.py", "--data", str(data), "--backbone", "efficientnet_lite0", "--image-size", "64",
         "--bank-size", "200", "--folds", "0", "1", "--sigmas", "2", "4", "--gaussian-weights", "0", "0.5",
         "--fusions", "sum", "max", "--bank-augment", "flip", "--stride8-weight", "1.5",
         "--gaussian-features", "mean", "mean+std", "mean@123456", "mean|mean@123456", "--out", str(out))
    rows = json.loads(out.read_text())["rows"]
    # 2 sigmas x (weight 0, and weight 0.5 with each of the 4 Gaussian feature sets and 2 fusions)
    assert len(rows) == 18
    assert all(len(r["validation_folds"]) == 2 and 0.0 <= r["validation_mean"] <= 1.0 for r in rows)
    assert [r["validation_mean"] for r in rows] == sorted((r["validation_mean"] for r in rows), reverse=True)
    assert all({"overall", "recall_at_1pct_frr"} <= set(r["test"]) for r in rows)
    # Each drawn defect type is ranked against the held-out goods on its own.
    assert all({"gradient", "scratch", "texture"} <= set(r["validation_per_type"]) for r in rows)


def test_fold0_probes_rank_each_run_and_the_summed_runs_on_validation(tmp_path, capsys):
    probes = _load("fold0_probes")
    rng = np.random.default_rng(0)

    def run(path, hot):
        # 60 held-out goods, then 20 drawn defects whose maps carry a hot spot ``hot`` high.
        val = rng.normal(size=(80, 40, 40)).astype(np.float16)  # 1,600 pixels: room for the top 1,024
        val[60:, 3, 3] += hot
        test = rng.normal(size=(10, 40, 40)).astype(np.float16)
        test[5:, 2, 2] += hot
        maps = {f"{part}_{k}": m for part, m in (("val", val), ("test", test)) for k in ("m16", "m8")}
        np.savez(path, val_labels=np.r_[np.zeros(60), np.ones(20)], test_labels=np.r_[np.zeros(5), np.ones(5)],
                 test_types=np.array(["good"] * 5 + ["crack"] * 5), val_gauss=rng.normal(size=80),
                 test_gauss=rng.normal(size=10), **maps)
        return path

    sharp, blind = run(tmp_path / "sharp.npz", 20.0), run(tmp_path / "blind.npz", 0.0)
    assert probes.main(["--combine", str(sharp), str(blind)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "validation" in line]
    # Two map variants x (each run, both runs) + the top-k scores of each run's 16k bank.
    assert len(rows) == 2 * 3 + 3
    validation = {name.strip(): float(rest.split()[0]) for name, rest in (line.split(" validation ") for line in rows)}
    assert validation["sharp, bank 16k"] == 1.0
    assert validation["blind, bank 16k"] < 0.8
    assert rows[0].startswith("sharp")  # ranked best first


def test_fold_sweep_joins_several_gaussians_by_their_summed_or_largest_z_score():
    sweep = _load("fold_sweep")
    rng = np.random.default_rng(0)
    holdout, part = rng.gamma(2.0, size=(50, 2)), rng.gamma(2.0, size=(8, 2)) + [0.0, 3.0]
    per_group = np.stack([(part[:, k] - holdout[:, k].mean()) / holdout[:, k].std(ddof=1) for k in range(2)])
    np.testing.assert_allclose(sweep.gaussian_z(part, holdout, "max"), per_group.max(axis=0))
    summed = sweep.gaussian_z(part, holdout, "sum")
    # The sum is z-scored again on the holdout: a single group is its own z-score.
    np.testing.assert_allclose(sweep.gaussian_z(holdout, holdout, "sum").std(ddof=1), 1.0)
    np.testing.assert_allclose(sweep.gaussian_z(part[:, :1], holdout[:, :1], "sum"), per_group[0])
    assert np.corrcoef(summed, per_group.sum(axis=0))[0, 1] > 0.999


def test_fold_sweep_reads_gaussian_feature_sets_and_refuses_malformed_ones():
    sweep = _load("fold_sweep")
    assert sweep.parse_features("mean") == ([[("mean", (1, 2, 4))]], "sum")
    assert sweep.parse_features("mean+std@1,max@56") == ([[("mean", (1, 2, 4)), ("std", (1,))], [("max", (5, 6))]],
                                                          "sum")
    assert sweep.parse_features("mean|mean@123456")[1] == "max"
    assert sweep.studied_stages(["mean", "std@3"]) == (1, 2, 3, 4)
    for bad in ("median", "mean@", "mean@7", "mean@21", "mean@1x", "mean,max|std"):
        with pytest.raises(ValueError, match="mean"):
            sweep.parse_features(bad)
