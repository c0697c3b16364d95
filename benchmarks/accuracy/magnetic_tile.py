"""Surface defects on real images: magnetic tile, the default model and its INT8 graph, and every
attention variant of the student (ARD against plain RD).

    .venv/bin/python benchmarks/accuracy/magnetic_tile.py              # train/eval what is missing
    .venv/bin/python benchmarks/accuracy/magnetic_tile.py --no-train   # table from existing reports
    .venv/bin/python benchmarks/accuracy/magnetic_tile.py --smoke      # synthetic data, tiny, temp dir

For the default model it runs ``ard-edge train --data DATA --out RUNS/default`` (no model flags),
and for each ``--attention`` exactly

    OMP_NUM_THREADS=1 ard-edge train --data DATA --out RUNS/<att> --attention <att> --distillation \
        --bank-size 0 --no-gaussian --image-size 256 --epochs 10 --batch-size 16 --seed 0 [--resume] \
        >> RUNS/<att>.train.log
    OMP_NUM_THREADS=1 ard-edge eval --model RUNS/<att>/model.ckpt --data DATA --out RUNS/<att>/report.json \
        > RUNS/<att>.eval.log

and skips a variant whose report.json exists, so runs made by hand with these commands are reused
(``--resume`` when an interrupted run left its train_state.pt).
The default model is then exported, quantized with ``ard-edge calibrate --profile cpu
--max-auroc-drop 0.005`` and its INT8 graph scored on the same test set through
``ard_edge.open_engine``.
The dataset is read in place (it has no licence: never copy it into the repository).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ARD_EDGE,
    REPO,
    RESULTS_DIR,
    RESULTS_MD,
    display,
    fmt,
    machine,
    machine_line,
    markdown_table,
    parse_train_log,
    read_json,
    run_logged,
    write_json,
    write_section,
)

HEADING = "## Surface defects: magnetic tile"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "magnetic_tile"
VARIANTS = ("none", "cbam", "se", "eca")
DEFAULT = "default"  # `ard-edge train` with no model flags
MAX_AUROC_DROP = "0.005"  # the INT8 gate the default model must pass
# The student's map alone, blurred as Reverse Distillation blurs it (sigma 4).
DISTILLATION_ONLY = ("--distillation", "--bank-size", "0", "--no-gaussian", "--blur-sigma", "4")
METRICS = (("image_auroc", "Image AUROC"), ("pixel_auroc", "Pixel AUROC"), ("pro", "PRO"),
           ("recall_at_1pct_frr", "Recall at a 1% false-reject rate"), ("recall", "Recall at the stored threshold"))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Magnetic tile in MVTec AD layout.")
    parser.add_argument("--runs", type=Path, help="Run folders. [runs/mt]")
    parser.add_argument("--attention", nargs="+", default=list(VARIANTS), help="Variants. [none cbam se eca]")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="OMP_NUM_THREADS for the runs (1: the machine is shared and OpenMP barriers "
                        "collapse when threads outnumber free cores). [1]")
    parser.add_argument("--no-train", action="store_true",
                        help="Only tabulate existing reports; missing ones are pending.")
    parser.add_argument("--skip-int8", action="store_true", help="No export/calibration of the default model.")
    parser.add_argument("--onnx-out", type=Path, help="FP32 export of the default model. [export/mt_default.onnx]")
    parser.add_argument("--int8-out", type=Path, help="INT8 graph. [calibration/mt_default.cpu.int8.onnx]")
    parser.add_argument("--results-md", type=Path, help="Markdown file to update. [docs/results.md]")
    parser.add_argument("--json", type=Path, help="Results JSON. [docs/results/magnetic_tile.json]")
    parser.add_argument("--smoke", action="store_true",
                        help="Synthetic data (ard-edge synth) in a temp dir, 32 px, 1 epoch, none and cbam.")
    parser.add_argument("--work", type=Path, help="Scratch folder of --smoke. [a new temp dir]")
    args = parser.parse_args(argv)
    if args.smoke:
        scratch = args.work or Path(tempfile.mkdtemp(prefix="mt_smoke_"))
        args.data = scratch / "synth"
        args.image_size, args.epochs = 32, 1
        if args.attention == list(VARIANTS):
            args.attention = ["none", "cbam"]
        args.runs = args.runs or scratch / "runs"
        args.onnx_out = args.onnx_out or scratch / "best.onnx"
        args.int8_out = args.int8_out or scratch / "best.int8.onnx"
        args.results_md = args.results_md or scratch / "results.md"
        args.json = args.json or scratch / "magnetic_tile.json"
    args.runs = args.runs or REPO / "runs" / "mt"
    args.onnx_out = args.onnx_out or REPO / "export" / "mt_default.onnx"
    args.int8_out = args.int8_out or REPO / "calibration" / "mt_default.cpu.int8.onnx"
    args.results_md = args.results_md or RESULTS_MD
    args.json = args.json or RESULTS_DIR / "magnetic_tile.json"
    return args


def shown(path: Path) -> str:
    """A path as typed in the repository root: relative inside the workspace (../shared/...), else absolute."""
    path = Path(path).resolve()
    return os.path.relpath(path, REPO) if path.is_relative_to(REPO.parent) else str(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.smoke and not (args.data / "train").is_dir():
        run_logged([ARD_EDGE, "synth", str(args.data), "--num-train", "24", "--num-test", "12",
                    "--image-size", "64", "--seed", "0"], args.data.parent / "synth.log")
    info = machine()
    print(f"machine: {machine_line(info)}", flush=True)
    variants = [run_variant(args, attention) for attention in [DEFAULT, *args.attention]]
    done = [v for v in variants if v["status"] == "done" and v["attention"] != DEFAULT]
    best = max(done, key=lambda v: (v["mean"]["image_auroc"], v["mean"]["pixel_auroc"] or 0)) if done else None
    int8 = None
    if variants[0]["status"] == "done" and not args.skip_int8:
        int8 = run_int8(args, variants[0])
    summary = {
        "benchmark": "magnetic_tile",
        "data": shown(args.data),
        "teacher": f"{(variants[0].get('model') or {}).get('backbone', '?')} (ImageNet, offline weights)",
        "settings": {"image_size": args.image_size, "epochs": args.epochs, "batch_size": args.batch_size,
                     "seed": args.seed, "threads": args.threads},
        "script": "benchmarks/accuracy/magnetic_tile.py" + (" --smoke" if args.smoke else ""),
        "machine": info,
        "best": best and best["attention"],
        "variants": variants,
        "int8": int8,
        "json": shown(args.json),
        "script_wall_s": round(time.perf_counter() - started, 1),
    }
    write_json(args.json, summary)
    write_section(args.results_md, HEADING, render(summary))
    print(f"wrote {args.json} and {args.results_md}")
    return 0


def commands(args, attention: str) -> dict[str, list[str]]:
    run = args.runs / attention
    train = [ARD_EDGE, "train", "--data", shown(args.data), "--out", shown(run)]
    if attention != DEFAULT:
        # Attention acts on the student's map: train it alone (the default model has no student).
        train += ["--attention", attention, *DISTILLATION_ONLY, "--image-size", str(args.image_size),
                  "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--seed", str(args.seed)]
    return {
        "train": train,
        "eval": [ARD_EDGE, "eval", "--model", shown(run / "model.ckpt"), "--data", shown(args.data),
                 "--out", shown(run / "report.json")],
    }


def run_variant(args, attention: str) -> dict:
    """Train and evaluate one attention variant unless its report exists; return its row."""
    from ard_edge.model import read_metadata

    run = args.runs / attention
    report_file, checkpoint = run / "report.json", run / "model.ckpt"
    train_log, eval_log = args.runs / f"{attention}.train.log", args.runs / f"{attention}.eval.log"
    cmds = commands(args, attention)
    row = {"attention": attention, "commands": {k: display(c, args.threads) for k, c in cmds.items()}}
    measured = {}
    if report_file.is_file():
        print(f"{attention}: reusing {shown(report_file)}", flush=True)
        row["source"] = "reused existing run"
    elif args.no_train:
        print(f"{attention}: no {shown(report_file)} yet: pending", flush=True)
        return {**row, "status": "pending"}
    else:
        if not (checkpoint.is_file() and parse_train_log(train_log).get("completed")):
            resume = (run / "train_state.pt").is_file()
            train_cmd = cmds["train"] + (["--resume"] if resume else [])
            measured["train_wall_s"] = round(run_logged(train_cmd, train_log, args.threads, append=resume), 1)
        measured["eval_wall_s"] = round(run_logged(cmds["eval"], eval_log, args.threads), 1)
        row["source"] = "run by this script"
    report = read_json(report_file)
    header = read_metadata(checkpoint) if checkpoint.is_file() else {}
    training = header.get("training", {})
    ran = {"epochs": training.get("epochs"), "seed": training.get("seed"), "batch_size": training.get("batch_size"),
           "image_size": header.get("model", {}).get("image_size")}
    asked = {"epochs": args.epochs, "seed": args.seed, "batch_size": args.batch_size, "image_size": args.image_size}
    if attention == DEFAULT:
        ran = asked = {}  # the default's own settings: nothing was asked
    if ran != asked:
        # A reused run made with other settings: show the settings it really had.
        row["settings_differ"] = {k: ran[k] for k in ran if ran[k] != asked[k]}
        print(f"{attention}: reused run differs from the requested settings: {row['settings_differ']}", flush=True)
    from_log = parse_train_log(train_log)
    eval_wall_s = measured.get("eval_wall_s")
    if eval_wall_s is None and checkpoint.is_file():
        # Reused run: the report is written when eval ends and the checkpoint when training ends.
        eval_wall_s = round(report_file.stat().st_mtime - checkpoint.stat().st_mtime, 1)
        row["eval_wall_note"] = "estimated from file times (report.json minus model.ckpt)"
    row.update(
        status="done",
        per_type={name: _pick(values) for name, values in report["per_type"].items()},
        mean={key: _mean([values.get(key) for values in report["per_type"].values()]) for key, _ in METRICS},
        overall=_pick(report["overall"]),
        false_rejects=report["overall"].get("fp"),
        num_images={name: values["num_images"] for name, values in report["per_type"].items()},
        num_good=report.get("num_good"),
        training=training,
        model=header.get("model"),
        train_segments=from_log.get("train_segments", 1),
        train_wall_estimated=from_log.get("train_wall_estimated", False),
        train_wall_s=from_log.get("train_wall_s", measured.get("train_wall_s")),
        eval_wall_s=eval_wall_s,
    )
    return row


def run_int8(args, model: dict) -> dict:
    """Export ``model``'s checkpoint, calibrate it for the CPU, and score FP32 and INT8 graphs alike."""
    checkpoint = args.runs / model["attention"] / "model.ckpt"
    # Mono (the tiles are grayscale, as a line camera gives them) and a dynamic batch, so that
    # the same files serve the engine benchmarks (docs/openvino.md).
    export_cmd = [ARD_EDGE, "export", "--model", shown(checkpoint), "--out", shown(args.onnx_out),
                  "--channels", "1", "--batch", "dynamic"]
    calibrate_cmd = [ARD_EDGE, "calibrate", "--onnx", shown(args.onnx_out), "--data", shown(args.data),
                     "--out", shown(args.int8_out), "--profile", "cpu", "--max-auroc-drop", MAX_AUROC_DROP]
    result = {"attention": model["attention"],
              "commands": [display(export_cmd, args.threads), display(calibrate_cmd, args.threads)]}
    logs = args.runs / "int8"
    # Which checkpoint the export came from: a new best (or a retrained one) means a new export.
    stamp_file = args.onnx_out.with_name(args.onnx_out.name + ".source.json")
    source = {"checkpoint": str(checkpoint.resolve()), "mtime": checkpoint.stat().st_mtime}
    try:
        stale = not args.onnx_out.is_file() or not stamp_file.is_file() or read_json(stamp_file) != source
        if stale:
            run_logged(export_cmd, logs / "export.log", args.threads)
            write_json(stamp_file, source)
        if not _has_command("calibrate"):
            result["status"] = "pending: `ard-edge calibrate` is not available in this build yet"
            print(f"INT8: {result['status']}", flush=True)
            return result
        calibrate_log = logs / "calibrate.log"
        refused_before = (not stale and calibrate_log.is_file() and _gate_lines(calibrate_log)
                          and calibrate_log.stat().st_mtime > args.onnx_out.stat().st_mtime)
        if refused_before:
            # Same export, same command: the gate would refuse again; rerun by deleting the log.
            raise RuntimeError(f"reusing the refusal in {shown(calibrate_log)}")
        if stale or not args.int8_out.is_file() or args.int8_out.stat().st_mtime < args.onnx_out.stat().st_mtime:
            result["calibrate_wall_s"] = round(run_logged(calibrate_cmd, calibrate_log, args.threads), 1)
    except RuntimeError as exc:
        result["status"] = f"failed: {exc}"
        gate = _gate_lines(logs / "calibrate.log")
        if gate:
            result["status"] = "refused by the calibration accuracy gate"
            result["gate_log"] = gate
        print(f"INT8: {result['status']}", flush=True)
        return result
    from ard_edge.calibration import report_path_for

    gate = report_path_for(args.int8_out)
    if gate.is_file():
        result["calibration_report"] = read_json(gate)
    for name, path in (("fp32_onnx", args.onnx_out), ("int8_onnx", args.int8_out)):
        scored = time.perf_counter()
        report = engine_report(path, args.data, args.threads)
        result[name] = {
            "path": shown(path),
            "per_type": {t: _pick(v) for t, v in report["per_type"].items()},
            "mean": {key: _mean([v.get(key) for v in report["per_type"].values()]) for key, _ in METRICS},
            "overall": _pick(report["overall"]),
            "eval_wall_s": round(time.perf_counter() - scored, 1),
        }
        print(f"{name}: mean image AUROC {result[name]['mean']['image_auroc']:.4f}", flush=True)
    result["status"] = "done"
    return result


def engine_report(engine_path: Path, data: Path, threads: int | None = None) -> dict:
    """ard-edge eval's report for an engine file: the test set read and resized as the engine expects."""
    from ard_edge import open_engine
    from ard_edge.data import list_samples, load_sample
    from ard_edge.metrics import ImageResult, evaluation_report

    results = []
    with open_engine(engine_path, threads=threads) as engine:
        spec = engine.input_spec
        samples = list_samples(data, "test")
        batch = spec.fixed_batch or 8
        for start in range(0, len(samples), batch):
            chunk = samples[start : start + batch]
            loaded = [load_sample(sample, (spec.height, spec.width)) for sample in chunk]
            frames = np.stack([item.image for item in loaded])
            if spec.channels == 1:
                frames = frames[..., :1]
            if spec.fixed_batch and len(chunk) < spec.fixed_batch:
                pad = np.repeat(frames[-1:], spec.fixed_batch - len(chunk), axis=0)
                frames = np.concatenate([frames, pad])
            out = engine.infer(frames)
            for i, (sample, item) in enumerate(zip(chunk, loaded)):
                mask = item.mask if sample.label else None
                results.append(ImageResult(sample.defect_type, sample.label, float(out.score[i]),
                                           out.anomaly_map[i, 0], mask))
        threshold = engine.threshold
    return evaluation_report(results, threshold)


def _gate_lines(log: Path) -> list[str]:
    """The settings and accuracy-gate lines ``ard-edge calibrate`` printed before refusing."""
    if not log.is_file():
        return []
    lines = [line.rstrip() for line in log.read_text(errors="replace").replace("\r", "\n").splitlines()]
    if not any(line.startswith("accuracy gate: REFUSED") for line in lines):
        return []
    keep = ("profile ", "quantized:", "accuracy gate:", "  ", "error:")
    return [line for line in lines if line.startswith(keep) and "img/s" not in line]


def _has_command(name: str) -> bool:
    probe = subprocess.run([ARD_EDGE, name, "--help"], capture_output=True, text=True, cwd=REPO)
    return probe.returncode == 0


def _pick(values: dict) -> dict:
    return {key: values.get(key) for key, _ in METRICS}


def _mean(values):
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def render(summary: dict) -> str:
    return "\n".join([default_section(summary), "", "### Attention: ARD against plain RD (the student's map alone)",
                      "", attention_section(summary)])


def default_section(summary: dict) -> str:
    """The default model per defect type and overall, then its INT8 graph."""
    default = summary["variants"][0]
    if default["status"] != "done":
        return "The default model has not been run yet: no numbers."
    header = ["type", "images", *(title for _, title in METRICS), "false rejects (of good)"]
    rows = [[t, str(default["num_images"][t]), *(fmt(default["per_type"][t][key]) for key, _ in METRICS), ""]
            for t in sorted(default["per_type"])]
    overall = default["overall"]
    rows.append(["**overall**", str(sum(default["num_images"].values()) + (default["num_good"] or 0)),
                 *(f"**{fmt(overall[key])}**" for key, _ in METRICS),
                 f"{default.get('false_rejects', '?')} of {default['num_good']}"])
    config = default.get("model") or {}
    model = ", ".join(f"{k} {v}" for k, v in config.items()
                      if k in ("backbone", "image_size", "bank_size", "gaussian", "gaussian_weight", "gaussian_fusion",
                               "gaussian_features", "distillation"))
    if "blur_sigma" in config:
        sigma = config["blur_sigma"]
        model += f", blur sigma {config['image_size'] / 32:g} (image size / 32)" if sigma is None else f", blur sigma {sigma:g}"
    return "\n".join([
        f"Magnetic tile (`{summary['data']}`, read in place; not in the repository: it has no licence), the "
        f"default model ({model}), percentages. Each type row scores that type against the "
        f"{default['num_good']} good test images; the overall row is every test image. Recall at a 1% "
        "false-reject rate reads its threshold off the good test images; the stored threshold comes from "
        "the held-out good images only.",
        "",
        markdown_table(header, rows),
        "",
        int8_text(summary["int8"] or {}),
        "",
        f"- Commands: `{default['commands']['train']}`, then `{default['commands']['eval']}`"
        f" (train {_secs(default.get('train_wall_s'))} s, eval {_secs(default.get('eval_wall_s'))} s).",
        *([f"- INT8: `{summary['int8']['commands'][0]}`, then `{summary['int8']['commands'][1]}`; both graphs "
           "scored on the test set through `ard_edge.open_engine` with the metrics of `ard-edge eval`."]
          if (summary["int8"] or {}).get("commands") else []),
        f"- Machine: {machine_line(summary['machine'])}.",
        f"- Script: `{summary['script']}` (resumable: a run whose `report.json` exists is reused; "
        f"this invocation took {summary['script_wall_s'] / 60:.1f} min). JSON: `{summary['json']}`.",
    ])


def attention_section(summary: dict) -> str:
    variants = summary["variants"][1:]
    done = [v for v in variants if v["status"] == "done"]
    pending = [v["attention"] for v in variants if v["status"] != "done"]
    types = sorted({t for v in done for t in v["per_type"]})
    counts = next((v["num_images"] for v in done), {})
    num_good = next((v["num_good"] for v in done), None)
    tables = []
    for key, title in METRICS[:3]:
        header = ["attention"] + [f"{t} ({counts.get(t, '?')})" for t in types] + ["mean"]
        rows = []
        for v in done:
            name = f"**{v['attention']}**" if v["attention"] == summary["best"] else v["attention"]
            rows.append([name] + [fmt(v["per_type"][t][key]) for t in types] + [fmt(v["mean"][key])])
        rows += [[f"{name} (pending)"] + ["-"] * (len(types) + 1) for name in pending]
        tables.append(f"{title} (%), per defect type (test images of the type; each scored against "
                      f"the {num_good} good test images) and the mean over types:\n\n{markdown_table(header, rows)}")

    run_rows = []
    for v in variants:
        if v["status"] != "done":
            run_rows.append([v["attention"], "pending", "", "", "", "", "", ""])
            continue
        t = v["training"]
        train_wall = _secs(v.get("train_wall_s"))
        if v.get("train_segments", 1) > 1:
            approx = "~" if v.get("train_wall_estimated") else ""
            train_wall = f"{approx}{train_wall} ({v['train_segments']} runs, resumed)"
        run_rows.append([
            v["attention"], str(t.get("epochs", "?")), str(t.get("seed", "?")),
            f"{t.get('train_images', '?')} + {t.get('holdout_images', '?')}",
            train_wall, _secs(v.get("eval_wall_s")),
            str(t.get("train_images_per_s", "?")), f"{t['final_loss']:.4f}" if "final_loss" in t else "?",
        ])
    runs_table = markdown_table(
        ["attention", "epochs", "seed", "train + holdout images", "train wall s", "eval wall s",
         "train images/s", "final loss"], run_rows)

    s = summary["settings"]
    if not done:
        tables, runs_table = ["No variant has finished yet: no numbers."], ""
    lines = [
        f"The same data and test split; each variant trains the attention bottleneck and student decoder and "
        f"scores with the student's map alone, {s['image_size']} px, "
        f"{s['epochs']} epoch(s), batch {s['batch_size']}, seed {s['seed']} for every variant; one seed, one run each. "
        "`none` is plain Reverse Distillation. Best variant (bold): highest mean image AUROC. "
        "PRO is integrated up to a false-positive rate of 0.3, as in MVTec AD.",
        "",
        f"Model: {model_line(done)}.",
        "",
        *("\n\n".join(tables).splitlines()),
        "",
        verdict(done, summary["best"]),
        "",
        *(["Runs (wall times as measured on a machine shared with other jobs: upper bounds; `ard-edge train` "
            "reports its own wall time; a run stopped and resumed with `--resume` adds the stopped run's "
            "progress-bar time (~); eval times of reused runs are estimated from file times):",
            "", runs_table, ""] if runs_table else []),
        "- Commands per variant:",
    ]
    for v in variants:
        lines.append(f"  - `{v['commands']['train']}`, then `{v['commands']['eval']}`")
    for v in variants:
        if v.get("settings_differ"):
            lines.append(f"- {v['attention']}: the reused run was made with {v['settings_differ']} "
                         "(from its checkpoint), not the settings of the command above.")
    if pending:
        lines.append(f"- Pending (no report yet when the table was written): {', '.join(pending)}. "
                     f"Rerun `{summary['script']}` once they exist.")
    return "\n".join(lines)


def model_line(done: list[dict]) -> str:
    """The architecture of the finished runs (attention aside), or a warning if they differ."""
    configs = {tuple((k, v) for k, v in sorted((d.get("model") or {}).items()) if k != "attention") for d in done}
    if len(configs) > 1:
        return "**the runs differ in architecture beyond attention: not comparable** " + "; ".join(
            f"{d['attention']}: {d.get('model')}" for d in done)
    return ", ".join(f"{k} {v}" for k, v in next(iter(configs), ())) or "unknown"


def verdict(done: list[dict], best: str | None) -> str:
    rd = next((v for v in done if v["attention"] == "none"), None)
    attended = [v for v in done if v["attention"] != "none"]
    if not rd or not attended:
        return "Not enough finished variants to compare attention with plain RD yet."
    top = max(attended, key=lambda v: v["mean"]["image_auroc"])
    parts = []
    for key, title in METRICS:
        if rd["mean"][key] is None or top["mean"][key] is None:
            continue
        parts.append(f"{title} {(top['mean'][key] - rd['mean'][key]) * 100:+.1f}")
    helped = top["mean"]["image_auroc"] - rd["mean"]["image_auroc"]
    beaten = [v["attention"] for v in attended if v["mean"]["image_auroc"] < rd["mean"]["image_auroc"]]
    head = (f"On mean image AUROC attention helps here: the best attention variant ({top['attention']}) "
            "vs plain RD (none): "
            if helped > 0.005 else
            f"On mean image AUROC attention does not help here (within 0.5 point, or worse): the best "
            f"attention variant ({top['attention']}) vs plain RD (none): ")
    tail = f" Variants below plain RD on mean image AUROC: {', '.join(beaten)}." if beaten else ""
    return head + ", ".join(parts) + " points (mean over defect types)." + tail


def int8_text(int8: dict) -> str:
    if not int8:
        return "INT8 of the default model: not run yet (no default run, or `--skip-int8`)."
    command = f"`ard-edge calibrate --profile cpu --max-auroc-drop {MAX_AUROC_DROP}`"
    if int8.get("gate_log"):
        block = "\n".join(int8["gate_log"])
        return (f"INT8 of the default model: {command} was **refused by its accuracy gate**, so no INT8 graph "
                "was written and there is no INT8 row. Its output:\n\n"
                f"```\n{block}\n```")
    if int8.get("status") != "done":
        return f"INT8 of the default model: {int8['status']}."
    fp32, q = int8["fp32_onnx"]["overall"], int8["int8_onnx"]["overall"]
    drops = ", ".join(f"{title} {(q[key] - fp32[key]) * 100:+.2f}" for key, title in METRICS[:3]
                      if q[key] is not None and fp32[key] is not None)
    text = (f"INT8 of the default model, {command} (Q/DQ, ONNX Runtime on the CPU), against the same FP32 "
            f"graph on the test set: {drops} points (overall). FP32 image AUROC {fmt(fp32['image_auroc'])}, "
            f"INT8 {fmt(q['image_auroc'])}.")
    report = int8.get("calibration_report") or {}
    gate, nodes = report.get("gate", {}), report.get("nodes", {})
    if gate:
        text += (f" Its gate {gate.get('status', '?')} on {gate.get('num_images', '?')} images (held-out goods and "
                 f"the test set; decision agreement {gate.get('decision_agreement', float('nan')):.3f}, score "
                 f"Pearson {gate.get('score_pearson', float('nan')):.4f}, AUROC drop "
                 f"{gate.get('auroc_drop', float('nan')):.4f}).")
    if nodes:
        quantized = sum((nodes.get("quantized") or {}).values())
        text += (f" Layers quantized: {quantized}; kept float: {nodes.get('float_stem', 0)} in the teacher's "
                 f"stem, {nodes.get('float_tail', 0)} in the scoring tail.")
    return text


def _secs(value) -> str:
    return "-" if value is None else f"{value:.0f}"


if __name__ == "__main__":
    sys.exit(main())
