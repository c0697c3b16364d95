"""``ard-edge calibrate``."""

from __future__ import annotations

from pathlib import Path

import click

from ard_edge.calibration import (
    DEFAULT_MAX_AUROC_DROP,
    DEFAULT_MIN_AGREEMENT,
    DEFAULT_NUM_IMAGES,
    METHODS,
    PROFILES,
)
from ard_edge.cli._common import FiniteFloat


@click.command()
@click.option("--onnx", "onnx_path", required=True, type=click.Path(path_type=Path),
              help="FP32 model from ard-edge export.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path),
              help="Dataset (train/good, optional test/) or a folder of good images. "
                   "Not needed with --ranges or a matching cache beside --out.")
@click.option("--out", type=click.Path(path_type=Path),
              help="INT8 Q/DQ ONNX file to write. [calibration/<name>.int8.onnx]")
@click.option("--num-images", type=click.IntRange(min=1), default=DEFAULT_NUM_IMAGES, show_default=True,
              help="Good images to calibrate on (seeded sample); the rest are held out for the gate.")
@click.option("--method", type=click.Choice(METHODS), default="percentile", show_default=True,
              help="How tensor ranges are chosen from the calibration activations.")
@click.option("--profile", type=click.Choice(list(PROFILES)), default="tensorrt", show_default=True,
              help="tensorrt: int8 symmetric (TensorRT explicit quantization, also runs on ONNX Runtime); "
                   "cpu: uint8 activations for ONNX Runtime on x86.")
@click.option("--max-auroc-drop", type=FiniteFloat(), default=DEFAULT_MAX_AUROC_DROP, show_default=True,
              help="Refuse the model if image AUROC falls by more than this (needs test/ defects).")
@click.option("--min-agreement", type=FiniteFloat(), default=DEFAULT_MIN_AGREEMENT, show_default=True,
              help="Refuse the model if FP32 and INT8 decisions agree on fewer images than this share.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--ranges", "ranges_path", type=click.Path(path_type=Path),
              help="Quantize from this ranges cache (<out>.ranges.json of an earlier run): no calibration pass.")
@click.option("--quantize-stem", is_flag=True,
              help="Quantize the teacher's stem too (the layers before its first compared feature map): "
                   "a few % faster, noisier scores at every scale.")
def calibrate(onnx_path, data_dir, out, num_images, method, profile, max_auroc_drop, min_agreement, seed,
              ranges_path, quantize_stem):
    """Quantize an exported ONNX model to INT8 (Q/DQ) behind an accuracy gate.

    The anomaly-map tail (cosine distance, upsampling, blur, score, decision) and the teacher's
    stem stay float32. If the INT8 model's decisions or AUROC stray too far from FP32 on held-out
    images, nothing is written and the command exits with status 3.
    """
    from ard_edge.calibration import calibrate_onnx
    from ard_edge.cli._common import progress_bar
    from ard_edge.errors import AccuracyGateRefused

    out = out or Path("calibration") / f"{onnx_path.stem}.int8.onnx"
    bars: dict[str, object] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            _close(bars)  # one bar at a time: the stages run one after the other
            bar = bars[stage] = progress_bar(total, stage, unit="img")
        bar.update(done - bar.n)

    try:
        report = calibrate_onnx(
            onnx_path, data_dir, out, profile=profile, num_images=num_images, method=method,
            max_auroc_drop=max_auroc_drop, min_agreement=min_agreement, seed=seed, progress=progress,
            ranges_path=ranges_path, quantize_stem=quantize_stem,
        )
    except AccuracyGateRefused as exc:
        _close(bars)
        click.echo(format_report(exc.report), err=True)
        raise
    _close(bars)
    click.echo(format_report(report))
    click.echo(f"wrote {out}\n      {report['ranges']['cache']}\n      {report['report_path']}")


def format_report(report: dict) -> str:
    """The gate's numbers as a small table."""
    quant = report.get("quantization")  # absent for a bf16/fp16 gate: nothing was quantized
    lines = []
    if quant:
        ranges = report["ranges"]
        lines.append(
            f"profile {quant['profile']} ({quant['activation_type']} activations, "
            f"{quant['weight_type']} per-channel weights), method {quant['method']}, "
            f"ranges: {ranges['source']} ({ranges['num_images']} images)")
    nodes = report.get("nodes")
    if nodes:
        # A model without a student compares the deepest tap, so its whole teacher is the stem.
        layers = ", ".join(f"{count} {op}" for op, count in nodes["quantized"].items()) or (
            "no layer (every layer is in the float stem: --quantize-stem quantizes them)")
        stem = f"float32 stem: {nodes['float_stem']} layers; " if nodes.get("float_stem") else ""
        lines.append(f"quantized: {layers}; {stem}float32 tail: {nodes['float_tail']} nodes")
    gate = report["gate"]
    if gate["status"] == "skipped":
        line = f"accuracy gate: SKIPPED ({gate['reason']})"
        gated = gate.get("ranges_gated_with")
        if gated and (gated.get("profile"), gated.get("float_stem")) != (quant["profile"], quant.get("float_stem")):
            line += (f"; they were gated in another build (profile {gated.get('profile')}, float stem "
                     f"{gated.get('float_stem')}): pass --data to gate this one")
        lines.append(line)
        return "\n".join(lines)
    rows = [
        ("images", f"{gate['num_images']} ({gate['num_good']} good, {gate['num_defective']} defective)", ""),
        ("decision agreement", f"{gate['decision_agreement']:.2%}", f">= {gate['min_agreement']:.2%}"),
        ("score Pearson r", _number(gate["score_pearson"]), ""),
        ("max |score diff|", _number(gate["max_abs_score_diff"]),
         f"(fp32 score std {_number(gate['score_std_fp32'])})" if "score_std_fp32" in gate else ""),
        ("image AUROC fp32", _number(gate["image_auroc_fp32"]), ""),
        (f"image AUROC {gate.get('candidate', 'int8')}", _number(gate["image_auroc_int8"]), ""),
        ("AUROC drop", _number(gate["auroc_drop"]), f"<= {gate['max_auroc_drop']:g}"),
    ]
    width = max(len(name) for name, _, _ in rows)
    lines.append(f"accuracy gate: {gate['status'].upper()}" + (f" ({gate['subject']})" if gate.get("subject") else ""))
    lines += [f"  {name:<{width}}  {value:<24} {limit}".rstrip() for name, value, limit in rows]
    return "\n".join(lines)


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _close(bars: dict) -> None:
    for bar in bars.values():
        bar.close()  # closing twice is harmless
