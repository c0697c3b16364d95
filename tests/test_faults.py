"""The fault matrix: every fault the runtime promises to survive, run for real, and every command
walked over a table of bad inputs.

For each fault: decisions on disk == frames captured - frames dropped, every line strict JSON,
the exit status and the one-line message of README's table, nothing half-written left behind.
The table of bad inputs runs the commands in this process through ``main`` (a subprocess per
case would spend the suite's budget importing torch); the runtime faults run ``ard-edge run``
as a real subprocess. Full and read-only disks are real tmpfs mounts, which needs root: the
tests that need one skip, saying so, where mounting is impossible. Slow faults (kill -9 and
restart, longer full-disk runs) live in ``benchmarks/faults.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from _models import exported_onnx, random_frames
from ard_edge._io import folder_lock
from ard_edge.camera import simulator_producer
from ard_edge.cli.main import main

ARD_EDGE = Path(sys.executable).parent / "ard-edge"
VIKY = simulator_producer()
SIMULATOR_ANNOUNCED = "using the GenICam simulator"  # the warning `simulator: true` prints, by design


# -- helpers -----------------------------------------------------------------------------------


def strict_json(line: str) -> dict:
    """``line`` parsed as strict JSON: the NaN and Infinity tokens Python would accept are refused."""

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(line, parse_constant=refuse)


def read_lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), f"{path} ends in a partial line"
    return [strict_json(line) for line in text.splitlines()]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.strip().splitlines() if SIMULATOR_ANNOUNCED not in line]


def assert_one_line(stderr: str, code: int, expected_code: int, pattern: str) -> None:
    lines = error_lines(stderr)
    assert "Traceback" not in stderr, stderr
    assert code == expected_code, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert re.search(pattern, lines[0]), lines[0]


def leftovers(folder: Path) -> list[Path]:
    """Temporary files an atomic write would leave if it were not atomic."""
    return [p for p in folder.rglob("*.tmp")]


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A real tmpfs mounted at ``path``; skips the test where this process may not mount."""
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command here: the full/read-only disk faults need a real small file system")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}): needs root with CAP_SYS_ADMIN")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def cli(args, cwd: Path, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "GENICAM_GENTL64_PATH"}
    environment.update(env or {})
    return subprocess.run([str(ARD_EDGE), *map(str, args)], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=180, **kwargs)


def summary_numbers(stdout: str) -> dict[str, int]:
    """Frames captured, dropped and decision-log counts from the summary ``run`` prints."""
    captured = re.search(r"frames captured (\d+): .* dropped (\d+)", stdout)
    log_line = re.search(r"decision log: (\d+) lines written, (\d+) not written", stdout)
    assert captured and log_line, stdout
    return {"captured": int(captured[1]), "dropped": int(captured[2]),
            "written": int(log_line[1]), "unwritten": int(log_line[2])}


# -- artifacts ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    return exported_onnx(tmp_path_factory, channels=1)


@pytest.fixture(scope="module")
def replay(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("replay")
    for i, frame in enumerate(random_frames(6, size=80)):
        cv2.imwrite(str(folder / f"{i:02d}.png"), frame[..., 0])
    return folder


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, onnx_model):
    """Good and broken models, checkpoints, engines and configs, made once."""
    import onnx
    import torch

    from ard_edge.deploy import BuildRequest, build_engine
    from ard_edge.model import ARDModel, ModelConfig, build_teacher, save_checkpoint

    folder = tmp_path_factory.mktemp("artifacts")
    good = onnx_model.read_bytes()
    model = ARDModel(ModelConfig(backbone="efficientnet_lite0", image_size=64, distillation=True, bank_size=256, attention="se"), build_teacher("efficientnet_lite0")).eval()
    save_checkpoint(folder / "good.ckpt", model, {"threshold": 1.0, "score_stats": {"min": 0.5}, "normalization": {}})
    save_checkpoint(folder / "nan_threshold.ckpt", model,
                    {"threshold": float("nan"), "score_stats": {"min": 0.5}, "normalization": {}})
    with torch.no_grad():
        next(p for p in model.parameters() if p.requires_grad).fill_(float("nan"))
    save_checkpoint(folder / "nan_weights.ckpt", model, {"threshold": 1.0, "score_stats": {"min": 0.5}, "normalization": {}})
    _with_header(folder / "good.ckpt", folder / "bad_header.ckpt", "{not json")
    _with_header(folder / "good.ckpt", folder / "list_header.ckpt", "[1, 2]")

    proto = onnx.load(str(onnx_model))
    _set_metadata(proto, "{not json")
    onnx.save(proto, str(folder / "bad_metadata.onnx"))
    proto = onnx.load(str(onnx_model))
    metadata = json.loads(next(p.value for p in proto.metadata_props if p.key == "ard_edge"))
    _set_metadata(proto, json.dumps({**metadata, "threshold": None}))
    onnx.save(proto, str(folder / "no_threshold.onnx"))
    _set_metadata(proto, json.dumps({**metadata, "threshold": float("nan")}))
    onnx.save(proto, str(folder / "nan_threshold.onnx"))
    proto = onnx.load(str(onnx_model))
    weight = next(t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and np.prod(t.dims) > 8)
    weight.CopyFrom(onnx.numpy_helper.from_array(np.full(tuple(weight.dims), np.nan, np.float32), weight.name))
    onnx.save(proto, str(folder / "nan_weights.onnx"))  # an older export's NaN model: the runtime must not PASS it

    (folder / "empty.onnx").write_bytes(b"")
    (folder / "truncated.onnx").write_bytes(good[: len(good) // 2])
    (folder / "random.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "random.ckpt").write_bytes(np.random.default_rng(1).bytes(4096))
    ckpt = (folder / "good.ckpt").read_bytes()
    (folder / "truncated.ckpt").write_bytes(ckpt[: len(ckpt) // 2])
    (folder / "image.onnx").write_bytes(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes())
    (folder / "a_folder.onnx").mkdir()

    engine = folder / "engines" / "m.engine"
    build_engine(BuildRequest(onnx=onnx_model, out=engine, target="onnxruntime"), probe=lambda: {})
    (folder / "no_sidecar.engine").write_bytes(engine.read_bytes())
    for name, sidecar_text in (("random_sidecar", "\x00\xff garbage"), ("list_sidecar", "[]"),
                               ("typed_sidecar", None)):
        (folder / f"{name}.engine").write_bytes(engine.read_bytes())
        text = sidecar_text
        if text is None:  # the right keys with the wrong kinds of value
            sidecar = json.loads(Path(f"{engine}.json").read_text())
            text = json.dumps({**sidecar, "engine": "big", "batch": [1, 2]})
        Path(f"{folder / name}.engine.json").write_text(text, encoding="latin-1")

    configs = {
        "random": np.random.default_rng(2).bytes(512),
        "utf16": "runtime:\n  batch: 2\n".encode("utf-16"),
        "list": b"- cam0\n- cam1\n",
        "inf": b"runtime:\n  max_wait_ms: .inf\n",
        "unknown": b"runtime:\n  batch_sze: 4\n",
        "negative": b"cameras:\n  cam0:\n    width: -5\n",
    }
    for name, data in configs.items():
        (folder / f"{name}.yaml").write_bytes(data)
    return folder


def _with_header(src: Path, dst: Path, header: str) -> None:
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(src)), str(dst), metadata={"ard_edge": header})


def _set_metadata(proto, text: str) -> None:
    for prop in proto.metadata_props:
        if prop.key == "ard_edge":
            prop.value = text


@pytest.fixture(scope="module")
def readonly(tmp_path_factory) -> Path:
    """A read-only file system (chmod does not stop root: a read-only mount does)."""
    with tmpfs(tmp_path_factory.mktemp("ro"), "size=64k,ro") as path:
        yield path


# -- the table: every command, bad inputs, one line, the documented exit code -------------------

A = "{artifacts}"


def _export(model: str) -> list[str]:
    return ["export", "--model", model, "--out", "{out}/m.onnx"]


BAD_INPUTS = [
    # export
    ("export-missing", _export(f"{A}/nothing.ckpt"), 1, "checkpoint not found"),
    ("export-empty", _export(f"{A}/empty.onnx"), 1, "not an ard-edge checkpoint or is corrupted"),
    ("export-truncated", _export(f"{A}/truncated.ckpt"), 1, "corrupted"),
    ("export-random", _export(f"{A}/random.ckpt"), 1, "corrupted"),
    ("export-folder", _export(f"{A}/a_folder.onnx"), 1, "checkpoint not found"),
    ("export-bad-header", _export(f"{A}/bad_header.ckpt"), 1, "metadata header is not valid JSON"),
    ("export-list-header", _export(f"{A}/list_header.ckpt"), 1, "has format 'list'"),
    ("export-nan-weights", _export(f"{A}/nan_weights.ckpt"), 1, "holds NaN or infinite values"),
    ("export-nan-threshold", _export(f"{A}/nan_threshold.ckpt"), 1, "threshold is nan, not a finite number"),
    ("export-out-is-folder", ["export", "--model", f"{A}/good.ckpt", "--out", "{out}"], 1, "is a folder; give a file name"),
    ("export-out-under-file", ["export", "--model", f"{A}/good.ckpt", "--out", "{file}/m.onnx"], 1, "exists and is not a folder"),
    ("export-out-readonly", ["export", "--model", f"{A}/good.ckpt", "--out", "{readonly}/m.onnx"], 1, "cannot write .*Read-only file system"),
    ("export-bad-batch", ["export", "--model", f"{A}/good.ckpt", "--batch", "many"], 2, "expected a positive integer or 'dynamic'"),
    # calibrate
    ("calibrate-random", ["calibrate", "--onnx", f"{A}/random.onnx", "--data", "{out}", "--out", "{out}/q.onnx"], 1, "not a readable ONNX model"),
    ("calibrate-bad-metadata", ["calibrate", "--onnx", f"{A}/bad_metadata.onnx", "--data", "{out}", "--out", "{out}/q.onnx"], 1, "metadata is not valid JSON"),
    ("calibrate-nan-agreement", ["calibrate", "--onnx", f"{A}/random.onnx", "--min-agreement", "nan"], 2, "'nan' is not a finite number"),
    # build-engine
    ("build-missing", ["build-engine", "--onnx", f"{A}/nothing.onnx", "--out", "{out}/e.engine"], 2, "nothing.onnx"),
    ("build-truncated", ["build-engine", "--onnx", f"{A}/truncated.onnx", "--out", "{out}/e.engine"], 2, "not a readable ONNX model"),
    ("build-image", ["build-engine", "--onnx", f"{A}/image.onnx", "--out", "{out}/e.engine"], 2, "not a readable ONNX model"),
    ("build-bad-metadata", ["build-engine", "--onnx", f"{A}/bad_metadata.onnx", "--out", "{out}/e.engine"], 1, "metadata is not valid JSON"),
    ("build-out-readonly", ["build-engine", "--onnx", "{onnx}", "--out", "{readonly}/e.engine"], 1, "cannot write .*Read-only file system"),
    ("build-bad-batch", ["build-engine", "--onnx", "{onnx}", "--out", "{out}/e.engine", "--batch", "4:2:1"], 2, "needs MIN <= OPT <= MAX"),
    # predict
    ("predict-engine-missing", ["predict", "--engine", f"{A}/nothing.onnx", "{replay}", "--out", "{out}"], 1, "engine file not found"),
    ("predict-engine-empty", ["predict", "--engine", f"{A}/empty.onnx", "{replay}", "--out", "{out}"], 1, "not a runnable ONNX model"),
    ("predict-engine-random", ["predict", "--engine", f"{A}/random.onnx", "{replay}", "--out", "{out}"], 1, "not a runnable ONNX model"),
    ("predict-engine-folder", ["predict", "--engine", f"{A}/a_folder.onnx", "{replay}", "--out", "{out}"], 1, "engine file not found"),
    ("predict-bad-metadata", ["predict", "--engine", f"{A}/bad_metadata.onnx", "{replay}", "--out", "{out}"], 1, "metadata is not valid JSON"),
    ("predict-no-threshold", ["predict", "--engine", f"{A}/no_threshold.onnx", "{replay}", "--out", "{out}"], 1, "no numeric threshold"),
    ("predict-no-sidecar", ["predict", "--engine", f"{A}/no_sidecar.engine", "{replay}", "--out", "{out}"], 1, "has no sidecar"),
    ("predict-random-sidecar", ["predict", "--engine", f"{A}/random_sidecar.engine", "{replay}", "--out", "{out}"], 1, "not a readable engine sidecar"),
    ("predict-list-sidecar", ["predict", "--engine", f"{A}/list_sidecar.engine", "{replay}", "--out", "{out}"], 1, "expected a JSON object"),
    ("predict-typed-sidecar", ["predict", "--engine", f"{A}/typed_sidecar.engine", "{replay}", "--out", "{out}"], 1, "'batch' must be a JSON object"),
    ("predict-input-missing", ["predict", "--engine", "{onnx}", "{out}/nothing.png", "--out", "{out}"], 1, "input not found"),
    ("predict-out-is-file", ["predict", "--engine", "{onnx}", "{replay}", "--out", "{file}"], 1, "cannot create the folder .*a_file/heatmaps: Not a directory"),
    ("predict-out-readonly", ["predict", "--engine", "{onnx}", "{replay}", "--out", "{readonly}"], 1, "cannot create the folder .*Read-only file system"),
    # run
    ("run-config-missing", ["run", "--camera", "cam0", "--engine", "{onnx}", "--config", f"{A}/nothing.yaml"], 2, "config file not found"),
    ("run-config-random", ["run", "--camera", "cam0", "--engine", "{onnx}", "--config", f"{A}/random.yaml"], 2, "random.yaml"),
    ("run-config-utf16", ["run", "--camera", "cam0", "--engine", "{onnx}", "--config", f"{A}/utf16.yaml"], 2, "not UTF-8 text"),
    ("run-config-list", ["run", "--camera", "cam0", "--engine", "{onnx}", "--config", f"{A}/list.yaml"], 2, "expected a mapping, got list"),
    ("run-config-inf", ["run", "--camera", "cam0", "--engine", "{onnx}", "--config", f"{A}/inf.yaml"], 2, r"runtime\.max_wait_ms: must be a finite number, got inf"),
    ("run-config-unknown", ["run", "--camera", "cam0", "--engine", "{onnx}", "--config", f"{A}/unknown.yaml"], 2, r"runtime\.batch_sze: unknown key"),
    ("run-config-negative", ["run", "--camera", "cam0", "--engine", "{onnx}", "--config", f"{A}/negative.yaml"], 2, r"cameras\.cam0\.width: must be positive"),
    ("run-max-wait-inf", ["run", "--camera", "cam0", "--engine", "{onnx}", "--max-wait-ms", "inf"], 2, "'--max-wait-ms': inf is not in the range"),
    ("run-max-wait-nan", ["run", "--camera", "cam0", "--engine", "{onnx}", "--max-wait-ms", "nan"], 2, "'--max-wait-ms': 'nan' is not a finite number"),
    ("run-duration-inf", ["run", "--camera", "cam0", "--engine", "{onnx}", "--duration", "inf"], 2, "'--duration': 'inf' is not a finite number"),
    ("run-engine-random", ["run", "--camera", "folder:{replay}", "--engine", f"{A}/random.onnx", "--out", "{out}"], 1, "not a runnable ONNX model"),
    ("run-out-is-file", ["run", "--camera", "folder:{replay}", "--engine", "{onnx}", "--out", "{file}"], 2, "'--out': Directory .* is a file"),
    ("run-out-readonly", ["run", "--camera", "folder:{replay}", "--engine", "{onnx}", "--out", "{readonly}"], 1, "cannot write .*Read-only file system"),
    ("run-folder-missing", ["run", "--camera", "folder:{out}/nothing", "--engine", "{onnx}", "--out", "{out}"], 1, "no such folder"),
    # cameras, bench, synth, train, eval
    ("cameras-config-random", ["cameras", "--config", f"{A}/random.yaml"], 2, "random.yaml"),
    ("cameras-config-utf16", ["cameras", "--config", f"{A}/utf16.yaml"], 2, "not UTF-8 text"),
    ("bench-engine-random", ["bench", "--engine", f"{A}/random.onnx"], 1, "not a runnable ONNX model"),
    ("bench-bad-batch", ["bench", "--engine", "{onnx}", "--batch", "x"], 2, "batch"),
    ("bench-duration-nan", ["bench", "--engine", "{onnx}", "--duration", "nan"], 2, "'--duration': 'nan' is not a finite number"),
    ("synth-out-is-file", ["synth", "{file}", "--num-train", "1", "--num-test", "0", "--image-size", "32"], 2, "'OUT': Directory .* is a file"),
    ("synth-out-readonly", ["synth", "{readonly}/data", "--num-train", "1", "--num-test", "0", "--image-size", "32"], 1, "Read-only file system"),
    ("train-config-random", ["train", "--config", f"{A}/random.yaml"], 2, "random.yaml"),
    ("train-lr-nan", ["train", "--data", "{replay}", "--out", "{out}/run", "--lr", "nan"], 2, "lr: must be a finite number"),
    ("eval-model-random", ["eval", "--model", f"{A}/random.ckpt", "--data", "{replay}"], 1, "corrupted"),
]


@pytest.mark.parametrize("args, code, pattern", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_one_line_and_the_documented_exit_code(args, code, pattern, artifacts, onnx_model, replay,
                                                              tmp_path, capfd, request, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "a_file").write_text("I am a file\n")
    values = {"artifacts": artifacts, "onnx": onnx_model, "replay": replay, "out": out, "file": tmp_path / "a_file"}
    if any("{readonly}" in arg for arg in args):
        values["readonly"] = request.getfixturevalue("readonly")
    monkeypatch.chdir(tmp_path)  # no ./ard-edge.yaml, and relative defaults land here
    with pytest.raises(SystemExit) as exit_info:
        main([arg.format(**values) for arg in args])
    stderr = capfd.readouterr().err
    assert_one_line(stderr, exit_info.value.code, code, pattern)
    assert not leftovers(tmp_path), leftovers(tmp_path)  # nothing half-written
    assert not [p for p in out.iterdir() if p.suffix in (".onnx", ".engine", ".json", ".jsonl")], list(out.iterdir())


# -- the runtime faults, each for real ----------------------------------------------------------


def test_nan_model_rejects_every_part_and_writes_strict_json(artifacts, replay, tmp_path):
    for model in ("nan_weights.onnx", "nan_threshold.onnx"):
        out = tmp_path / model
        done = cli(["run", "--camera", f"folder:{replay}", "--engine", artifacts / model, "--out", out], tmp_path)
        assert done.returncode == 0, done.stderr  # a rejected part is a result, not an error
        decisions = read_lines(out / "decisions.jsonl")
        summary = strict_json((out / "summary.json").read_text())
        assert len(decisions) == summary["frames_captured"] - summary["dropped"] == 6
        assert all(d["verdict"] == "ERROR" and d["reject"] and d["score"] is None for d in decisions)
        assert summary["decisions"]["ERROR"] == 6 and summary["lost"] == 0
        assert "non-finite engine output" in done.stdout or "threshold" in decisions[0]["error"]
    assert "the engine's threshold is nan, not a finite number" in decisions[0]["error"]
    done = cli(["predict", "--engine", artifacts / "nan_weights.onnx", replay, "--out", tmp_path / "predict"], tmp_path)
    assert done.returncode == 0 and "6 images: 0 PASS, 0 FAIL, 6 ERROR" in done.stdout, done.stderr
    rows = read_lines(tmp_path / "predict" / "predictions.jsonl")
    assert all(r["verdict"] == "ERROR" and r["score"] is None and "non-finite" in r["error"] for r in rows)


def test_full_disk_stops_the_run_and_says_what_was_not_written(onnx_model, replay, tmp_path):
    config = tmp_path / "ard-edge.yaml"
    config.write_text("runtime:\n  min_free_disk_mb: 0\n  save_pass_every: 1\n")  # images fill the disk fast
    with tmpfs(tmp_path / "disk", "size=192k") as disk:
        done = cli(["run", "--camera", f"folder:{replay}", "--loop", "--engine", onnx_model, "--config", config,
                    "--out", disk, "--max-frames", 20000], tmp_path)
        assert_one_line(_errors_only(done.stderr), done.returncode, 1,
                        r"the decision log failed \(.*No space left on device\): acquisition stopped")
        numbers = summary_numbers(done.stdout)
        lines = read_lines(disk / "decisions.jsonl")  # every line whole and strict, no partial tail
        assert len(lines) == numbers["written"] > 0 and numbers["unwritten"] >= 1
        assert numbers["written"] + numbers["unwritten"] == numbers["captured"] - numbers["dropped"]
        assert numbers["captured"] < 20000  # acquisition stopped at the failure
        assert "stopped by decision_log_failed" in done.stdout
        assert not leftovers(disk)
        if (disk / "summary.json").is_file():  # when it fit, it tells the same story
            summary = strict_json((disk / "summary.json").read_text())
            assert summary["sink_stats"]["decision_lines"] == numbers["written"] and summary["lost"] == 0


def _errors_only(stderr: str) -> str:
    """stderr without the log records and live status lines a run prints before its one-line error."""
    return "\n".join(line for line in stderr.splitlines()
                     if not line.startswith(("ERROR ard_edge", "WARNING ard_edge")) and " fps | latency " not in line)


def test_restart_moves_a_truncated_last_line_aside_and_appends(onnx_model, replay, tmp_path):
    out = tmp_path / "out"
    first = cli(["run", "--camera", f"folder:{replay}", "--engine", onnx_model, "--out", out], tmp_path)
    assert first.returncode == 0, first.stderr
    log_path = out / "decisions.jsonl"
    whole = log_path.read_bytes()
    log_path.write_bytes(whole + whole.splitlines(keepends=True)[0][:37])  # a crash mid-line
    second = cli(["run", "--camera", f"folder:{replay}", "--engine", onnx_model, "--out", out], tmp_path)
    assert second.returncode == 0, second.stderr
    lines = read_lines(log_path)
    assert len(lines) == 12 and log_path.read_bytes().startswith(whole)
    assert (out / "decisions.jsonl.1.partial").read_bytes() == whole.splitlines(keepends=True)[0][:37]
    assert "truncated last line from an earlier run was moved to decisions.jsonl.1.partial" in second.stdout
    run_ids = [d["run_id"] for d in lines]
    assert len(set(run_ids[:6])) == len(set(run_ids[6:])) == 1 and run_ids[0] != run_ids[6]  # restarts are traceable
    assert strict_json((out / "summary.json").read_text())["run_id"] == run_ids[6]


def test_a_stage_that_dies_turns_its_frames_into_error_decisions(onnx_model, replay, tmp_path, monkeypatch):
    from ard_edge.camera import FolderReplay
    from ard_edge.engines import open_engine
    from ard_edge.runtime import DecisionLog, RuntimeConfig, inference, run_pipeline

    def bug(result):  # a bug inside the inference thread, after the engine ran
        raise OverflowError("a bug")

    monkeypatch.setattr(inference, "non_finite", bug)
    settings = RuntimeConfig(batch=4)
    with open_engine(onnx_model) as engine, FolderReplay(replay, fps=50, loop=True) as source:  # paced: the queue runs dry
        summary = run_pipeline(source, engine, settings, [DecisionLog(tmp_path)], max_frames=10)
    decisions = read_lines(tmp_path / "decisions.jsonl")
    assert summary.stop_reason == "stage_crashed" and "inference stage crashed (OverflowError" in summary.error
    assert len(decisions) == summary.frames_captured - summary.dropped and summary.lost == 0
    assert summary.decisions["ERROR"] == len(decisions) >= 1
    assert all(d["verdict"] == "ERROR" and d["reject"] and "inference stage crashed" in d["error"] for d in decisions)


def test_a_swapped_engine_or_sidecar_is_refused(artifacts, replay, tmp_path):
    import onnx

    engine = tmp_path / "m.engine"
    shutil.copy(artifacts / "engines" / "m.engine", engine)
    shutil.copy(artifacts / "engines" / "m.engine.json", f"{engine}.json")
    proto = onnx.load(str(engine))  # another model's engine of the same size: the same graph, another threshold
    metadata = json.loads(next(p.value for p in proto.metadata_props if p.key == "ard_edge"))
    _set_metadata(proto, json.dumps({**metadata, "threshold": 9.0}))
    onnx.save(proto, str(tmp_path / "other.engine"))
    assert (tmp_path / "other.engine").stat().st_size == engine.stat().st_size
    shutil.copy(tmp_path / "other.engine", engine)
    done = cli(["predict", "--engine", engine, replay, "--out", tmp_path / "p"], tmp_path)
    assert_one_line(done.stderr, done.returncode, 1, r"records sha256 .* hashes differently: the two do not belong together")

    shutil.copy(artifacts / "engines" / "m.engine", engine)  # the right engine, a sidecar edited by hand
    sidecar = json.loads(Path(f"{engine}.json").read_text())
    sidecar["metadata"]["threshold"] = 9.0
    Path(f"{engine}.json").write_text(json.dumps(sidecar))
    done = cli(["predict", "--engine", engine, replay, "--out", tmp_path / "p"], tmp_path)
    assert_one_line(done.stderr, done.returncode, 1, r"sidecar's metadata disagrees with the graph's on threshold")
    assert not (tmp_path / "p" / "predictions.jsonl").exists()


def test_a_second_run_on_one_folder_names_the_holder(onnx_model, replay, tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom ard_edge._io import folder_lock\n"
                               "with folder_lock(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(60)",
                               str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        done = cli(["run", "--camera", f"folder:{replay}", "--engine", onnx_model, "--out", out], tmp_path)
        assert_one_line(done.stderr, done.returncode, 1, rf"{re.escape(str(out))} is in use by another ard-edge run"
                                                        rf" \(pid {holder.pid}\)")
        assert not (out / "decisions.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(out):  # the kernel dropped the killed holder's lock
        pass


@pytest.mark.skipif(VIKY is None, reason="the installed genicam package has no viky.cti")
def test_a_bad_producer_path_never_falls_back_to_the_simulator(onnx_model, tmp_path):
    config = tmp_path / "ard-edge.yaml"
    config.write_text('cameras:\n  cam0:\n    serial: "2"\n    pixel_format: Mono8\n')
    done = cli(["run", "--camera", "cam0", "--engine", onnx_model, "--config", config, "--out", tmp_path / "o"],
               tmp_path, env={"GENICAM_GENTL64_PATH": str(tmp_path / "no-such-dir")})
    assert_one_line(done.stderr, done.returncode, 1, r"GENICAM_GENTL64_PATH=.*no-such-dir: no GenTL producer \(\.cti\) there")
    done = cli(["run", "--camera", "cam0", "--engine", onnx_model, "--config", config, "--out", tmp_path / "o"], tmp_path)
    assert_one_line(done.stderr, done.returncode, 1, "no GenTL producer: set `producer:`")
    assert not (tmp_path / "o" / "decisions.jsonl").exists()

    config.write_text('cameras:\n  cam0:\n    simulator: true\n    serial: "2"\n    pixel_format: Mono8\n'
                      "    width: 128\n    height: 100\n")
    done = cli(["run", "--camera", "cam0", "--engine", onnx_model, "--config", config, "--out", tmp_path / "o",
                "--max-frames", 5], tmp_path)
    assert done.returncode == 0 and SIMULATOR_ANNOUNCED in done.stderr, done.stderr  # asked for, and announced
    device = {"vendor": "Machine Vision Games Ltd.", "model": "Viky", "serial": "2"}
    decisions = read_lines(tmp_path / "o" / "decisions.jsonl")
    assert len(decisions) == 5 and all(d["device"] == device for d in decisions)
    assert strict_json((tmp_path / "o" / "summary.json").read_text())["device"] == device
    assert "Machine Vision Games Ltd. Viky, serial 2" in done.stdout


@pytest.mark.skipif(VIKY is None, reason="the installed genicam package has no viky.cti")
def test_a_camera_setting_the_camera_refuses_stops_the_run_before_streaming(onnx_model, tmp_path):
    config = tmp_path / "ard-edge.yaml"
    config.write_text('cameras:\n  cam0:\n    simulator: true\n    serial: "2"\n    pixel_format: Mono8\n'
                      "    width: 5000\n")
    done = cli(["run", "--camera", "cam0", "--engine", onnx_model, "--config", config, "--out", tmp_path / "o"], tmp_path)
    assert_one_line(done.stderr, done.returncode, 1, r"the camera refused Width = 5000 .*fix cameras\.cam0\.width")
    assert not (tmp_path / "o" / "decisions.jsonl").exists()


def test_a_corrupt_replay_image_is_one_error_decision(onnx_model, replay, tmp_path):
    folder = tmp_path / "images"
    shutil.copytree(replay, folder)
    (folder / "03.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    done = cli(["run", "--camera", f"folder:{folder}", "--engine", onnx_model, "--out", out], tmp_path)
    assert done.returncode == 0, done.stderr
    decisions = {Path(d["source"]).name: d for d in read_lines(out / "decisions.jsonl")}
    assert len(decisions) == 6 and decisions["03.png"]["verdict"] == "ERROR" and decisions["03.png"]["reject"]
    assert "cannot decode" in decisions["03.png"]["error"]
    assert all(d["verdict"] != "ERROR" for name, d in decisions.items() if name != "03.png")
    assert strict_json((out / "summary.json").read_text())["stop_reason"] == "end_of_stream"
    done = cli(["predict", "--engine", onnx_model, folder, "--out", tmp_path / "predict"], tmp_path)
    assert done.returncode == 0 and "6 images:" in done.stdout and ", 1 ERROR" in done.stdout, done.stderr
    rows = {Path(r["path"]).name: r for r in read_lines(tmp_path / "predict" / "predictions.jsonl")}
    assert rows["03.png"]["verdict"] == "ERROR" and rows["03.png"]["heatmap"] is None and len(rows) == 6


def test_artifacts_follow_the_umask_and_stale_temp_files_are_cleaned(onnx_model, replay, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".predictions.jsonl.999999999.0badf00d.tmp"  # left by a writer killed with -9 (no such pid)
    stale.write_text("half")
    alive = out / f".predictions.jsonl.{os.getpid()}.0badf00d.tmp"  # a live writer's: left alone
    alive.write_text("busy")
    done = cli(["predict", "--engine", onnx_model, replay, "--out", out], tmp_path, preexec_fn=lambda: os.umask(0o027))
    assert done.returncode == 0, done.stderr
    assert (out / "predictions.jsonl").stat().st_mode & 0o777 == 0o640
    assert next((out / "heatmaps").iterdir()).stat().st_mode & 0o777 == 0o640
    assert not stale.exists() and alive.exists()


def test_sigint_still_drains_under_the_new_checks(onnx_model, replay, tmp_path):
    """A looping replay stopped by SIGINT: exit 0, every captured frame decided, the lock released."""
    out = tmp_path / "out"
    with open(tmp_path / "stdout", "w") as stdout:
        proc = subprocess.Popen([str(ARD_EDGE), "run", "--camera", f"folder:{replay}", "--loop", "--fps", "50",
                                 "--engine", str(onnx_model), "--out", str(out)], stdout=stdout,
                                stderr=subprocess.DEVNULL, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 60
            while not (out / "decisions.jsonl").is_file() or len((out / "decisions.jsonl").read_text().splitlines()) < 5:
                assert time.monotonic() < deadline, "no decisions within 60 s"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0
        finally:
            proc.kill()
    summary = strict_json((out / "summary.json").read_text())
    assert len(read_lines(out / "decisions.jsonl")) == summary["frames_captured"] - summary["dropped"]
    with folder_lock(out):
        pass
