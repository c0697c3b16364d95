"""The report as a PNG: latency distributions (box per engine, one panel per batch) and throughput vs batch.

matplotlib (the ``[plot]`` extra) is imported here only, with the file-only Agg backend, so no
display is needed.
"""

from __future__ import annotations

from pathlib import Path

from ard_edge._io import atomic_path
from ard_edge.errors import ConfigError, require

DPI = 80  # small files: the plot is committed next to the docs


def plot_report(report, path: str | Path) -> None:
    """Write ``report``'s plot to ``path`` (PNG).

    Raises:
        MissingDependency: matplotlib is not installed.
        ConfigError: a pipeline report (it keeps percentiles, not samples) or no results.
    """
    if report.mode != "raw":
        raise ConfigError("--plot needs raw engine mode: pipeline runs keep percentiles, not per-call samples")
    if not report.results:
        raise ConfigError("--plot: nothing was measured")
    matplotlib = require("matplotlib", "plot")
    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    batches = list(report.settings.batches)
    batches = [b for b in batches if any(r.batch == b for r in report.results)]
    labels = [e["label"] for e in report.engines]
    colors = [f"C{i % 10}" for i in range(len(labels))]

    figure = Figure(figsize=(3.2 * (len(batches) + 1) + 0.8, 3.6), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, len(batches) + 1, squeeze=False)[0]
    for ax, batch in zip(axes, batches):
        results = [r for r in report.results if r.batch == batch]
        boxes = ax.boxplot(
            [r.samples_ms for r in results],
            patch_artist=True,
            showfliers=True,
            flierprops={"markersize": 2, "alpha": 0.5},
            medianprops={"color": "black"},
        )
        for patch, result in zip(boxes["boxes"], results):
            patch.set_facecolor(colors[result.engine_index])
            patch.set_alpha(0.7)
        ax.set_xticks(range(1, len(results) + 1), [f"#{r.engine_index}" for r in results])
        ax.set_title(f"batch {batch}: latency", fontsize=9)
        ax.set_ylabel("ms per batch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(bottom=0)

    ax = axes[-1]
    for index, label in enumerate(labels):
        points = sorted((r.batch, r.throughput_ips) for r in report.results if r.engine_index == index)
        if points:
            ax.plot(*zip(*points), marker="o", color=colors[index], label=f"#{index} {label}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set_xlabel("batch size", fontsize=8)
    ax.set_ylabel("images/s", fontsize=8)
    ax.set_title("throughput", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=0)
    figure.legend(*ax.get_legend_handles_labels(), loc="outside lower center", fontsize=7, ncols=1, frameon=False)

    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
