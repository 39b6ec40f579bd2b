"""Metric-vs-generation plots: one panel per experiment, one line per regime, a band over seeds."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ouroboros import io, paths
from ouroboros import regimes as R
from ouroboros.jobs import load_samples
from ouroboros.sweeps import line_colours
from ouroboros.tables import read_study
from ouroboros.targets import make_target
from ouroboros.targets.capabilities import closed_form


def plot_target(metrics_csv, out_dir, metrics: dict[str, dict], experiments: Sequence[dict],
                band: str = "minmax") -> list[Path]:
    """One target's plots in one go (one process, one table read): ``{metric}.png`` in ``out_dir`` for every
    metric of ``metrics`` (name -> {unit, ...}); ``experiments``: the target's, dicts with label, target,
    params, n, lam and regimes ({kind, rho, fresh} each)."""
    table = read_study(metrics_csv)
    labels = {e["label"] for e in experiments}
    table = table[table["experiment"].isin(labels)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for metric, info in metrics.items():
        path = out_dir / paths.PLOT_PATTERN.format(metric=metric)
        _save(metric_figure(table, metric, experiments, band, info.get("unit", "")), path)
        written.append(path)
    return written


#: the unit of a metric that is a share (0..1): drawn on [0, 1]
SHARE = "share"
#: lines with at most this many generations get a marker per point
MARKERS_UP_TO = 20


def metric_figure(table, metric: str, experiments: Sequence[dict], band: str = "minmax", unit: str = ""):
    """One metric's figure (of :func:`plot_target`) from the joined study table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    table = table[table["metric"] == metric]
    exps = [e for e in experiments if e["label"] in set(table["experiment"])]
    if not exps:
        raise ValueError(f"no experiment of the study reports the metric {metric!r}")
    ncols = min(3, len(exps))
    nrows = math.ceil(len(exps) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows), squeeze=False)
    for ax, exp in zip(axes.flat, exps):
        sub = table[table["experiment"] == exp["label"]]
        seeds = sub["seed"].nunique()
        short = sub["generation"].nunique() <= MARKERS_UP_TO
        regimes = [R.from_spec(r) for r in exp["regimes"]]
        colours = line_colours([r.label for r in regimes], [r.kind for r in regimes])
        for label in colours:
            rows = sub[sub["regime"] == label]
            if rows.empty:
                continue
            wide = rows.pivot_table(index="generation", columns="seed", values="value")
            gens = wide.index.to_numpy()
            colour = colours[label]
            ax.plot(gens, wide.mean(axis=1), color=colour, lw=1.4, label=label, marker="o" if short else None, ms=3)
            if wide.shape[1] > 1 and band != "none":
                if band == "sd":
                    lo, hi = wide.mean(axis=1) - wide.std(axis=1), wide.mean(axis=1) + wide.std(axis=1)
                else:
                    lo, hi = wide.min(axis=1), wide.max(axis=1)
                ax.fill_between(gens, lo, hi, color=colour, alpha=0.2, lw=0)
        target = make_target(exp["target"], exp["params"])
        gens = np.sort(sub["generation"].unique())
        for regime in regimes:
            expected = closed_form(target, metric, gens, regime, exp["n"], exp["lam"], exp.get("curation"))
            if expected is not None:
                ax.plot(gens, expected, "--", color=colours[regime.label], lw=1, label=f"theory ({regime.label})")
        values = sub["value"].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        positive = values[values > 0]
        if unit == SHARE:  # a share of replicates or items: the whole range, so that all-zero reads as zero
            ax.set_ylim(-0.03, 1.03)
        elif values.size and values.min() >= 0 and positive.size and positive.max() / positive.min() > 100:
            if values.min() > 0:
                ax.set_yscale("log")
            else:  # zeros (e.g. a drift at generation 0): linear near 0, logarithmic above
                ax.set_yscale("symlog", linthresh=float(np.quantile(positive, 0.05)))
        gmax = sub["generation"].max()
        if gmax and gmax > 200:
            ax.set_xscale("symlog", linthresh=10)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        spread = ("1 seed: no band" if seeds == 1 else
                  f"{seeds} seeds" + ("" if band == "none" else f", band {'mean ± sd' if band == 'sd' else 'min-max'}"))
        ax.set_title(f"{exp['label']} ({spread})", fontsize=9)
        ax.set_xlabel("generation")
        ax.set_ylabel(f"{metric} ({unit})" if unit else metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(exps):]:
        ax.set_visible(False)
    return fig


def sample_grid(sample_dirs: Sequence, generations: Sequence[int], shape: tuple[int, int], out_png,
                per_row: int = 12, title: str = "") -> None:
    """One row of samples per generation (the first ``per_row`` images of each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = shape
    rows = []
    for d in sample_dirs:
        x = np.asarray(load_samples(d))[0][:per_row].reshape(-1, h, w)
        row = np.full((h, per_row * (w + 1)), np.nan)  # separators are drawn blank
        for i, img in enumerate(x):
            row[:, i * (w + 1): i * (w + 1) + w] = img
        rows.append(row)
    fig, axes = plt.subplots(len(rows), 1, figsize=(per_row * 0.6, 0.62 * len(rows) + 0.4), squeeze=False)
    cmap = matplotlib.colormaps["gray_r" if h <= 8 else "gray"].copy()
    cmap.set_bad("white")
    for ax, row, g in zip(axes[:, 0], rows, generations):
        ax.imshow(row, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(f"gen {g}", rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    _save(fig, out_png)


def plot_distribution(name: str, groups: Sequence[dict], out_png, description: str = "", title: str = "",
                      bins: int = 60) -> None:
    """Overlaid histograms of a per-item quantity, one per generation, one panel per regime.

    ``groups``: dicts with ``regime``, ``generation`` and ``files`` (``distributions.npz`` of every seed).
    Positive quantities spanning more than a factor 20 get log-spaced bins and a log x axis.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values: dict[tuple[str, int], np.ndarray] = {}
    for g in groups:
        parts = [io.load_npz(f).get(name) for f in g["files"]]
        parts = [np.asarray(p, dtype=float).ravel() for p in parts if p is not None]
        v = np.concatenate(parts) if parts else np.zeros(0)
        values[(g["regime"], int(g["generation"]))] = v[np.isfinite(v)]
    if not any(v.size for v in values.values()):
        raise ValueError(f"no {name!r} values in the experiment's distributions.npz files")
    regimes = list(dict.fromkeys(r for r, _ in values))
    gens = sorted({gen for _, gen in values})
    allv = np.concatenate([v for v in values.values() if v.size])
    lo, hi = float(allv.min()), float(allv.max())
    logx = lo > 0 and hi / lo > 20
    edges = np.geomspace(lo, hi, bins + 1) if logx else np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    cmap = matplotlib.colormaps["viridis"]
    fig, axes = plt.subplots(1, len(regimes), figsize=(4.8 * len(regimes), 3.6), squeeze=False, sharex=True, sharey=True)
    for ax, regime in zip(axes[0], regimes):
        for gen in gens:
            v = values.get((regime, gen), np.zeros(0))
            if not v.size:
                continue
            colour = cmap(gen / max(1, gens[-1]))
            w = np.full(v.size, 1.0 / v.size)  # share of the generation's items per bin
            ax.hist(v, bins=edges, weights=w, histtype="stepfilled", alpha=0.25, color=colour)
            ax.hist(v, bins=edges, weights=w, histtype="step", lw=1.2, color=colour, label=f"gen {gen}")
        if logx:
            ax.set_xscale("log")
        ax.set_title(f"{title} / {regime}" if title else regime, fontsize=9)
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("share of items")
    if description:
        fig.suptitle(description, fontsize=8)
    _save(fig, out_png)


def _save(fig, out_png) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
