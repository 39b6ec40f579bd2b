"""Sweep plots: a metric's summary (its value at the last generation, the mean time until it reaches 1, or
the time it takes to cross a threshold) against a swept setting, one line per regime, theory overlaid; with a
second setting, a heatmap (MAD's phase diagram).

A sweep plot is configured under ``plots.sweeps`` of a study (see config/schema.yaml)::

    plots:
      sweeps:
        - name: fixation-time
          experiments: [wf-n10, wf-n100]   # config entry names (with every sweep value); default: all
          metric: fixed
          statistic: mean_time             # last (default) | mean_time | time_to (with threshold)
          x: n                             # any column of the metrics table: n, lam, K, rho, n_real, q, ...
          panels: K                        # optional: one panel per value
          lines: regime                    # default: one line per regime label
          y: lam                           # optional: a heatmap of x by y, one per line

``x: generation`` draws the metric's curves over generations instead (one line per ``lines`` value, e.g.
``lines: experiment`` to compare experiments on one axes); ``relative: true`` divides each seed's curve by its
generation-0 value (a risk ratio).  ``generation: g`` takes the metric at generation g instead of the last.

Measured values are averaged over seeds (bars: min to max over seeds); the theory is the target's
``closed_form`` at the last generation (``last``) or its ``expected_time`` (``mean_time``).  Beside each
figure a CSV holds the numbers drawn.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ouroboros import regimes as R
from ouroboros.chain import METRICS as ENGINE_METRICS
from ouroboros.settings import ConfigError, results_settings
from ouroboros.tables import read_study
from ouroboros.targets import make_target, target_class
from ouroboros.targets.capabilities import closed_form, expected_time

STATISTICS = {
    "last": "the value at the last generation",
    "mean_time": "the mean time until the metric reaches 1: sum over generations of (1 - value) (for a CDF "
                 "metric such as fixed or lost_any, the mean generation of the event; a lower bound where "
                 "some replicates have not reached it by the last generation)",
    "time_to": "the first generation at which the mean over replicates crosses the threshold",
}

#: one fixed colour per regime kind, in every sweep figure
KIND_COLOURS = {"replace": "#d62728", "accumulate": "#1f77b4", "accumulate-subsample": "#2ca02c", "mix": "#9467bd"}
OTHER_COLOURS = ["#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def experiments_of(spec: dict, experiments: Sequence) -> list:
    """The experiments a sweep plot draws (objects or dicts with ``name``/``label``)."""
    names = spec.get("experiments")
    get = (lambda e, k: e[k]) if experiments and isinstance(experiments[0], dict) else getattr
    if not names:
        return list(experiments)
    return [e for e in experiments if get(e, "name") in names]


def check_specs(study) -> list[dict]:
    """Check ``plots.sweeps`` of a study against its experiments; a ConfigError names the problem."""
    specs = study.config.get("plots", {}).get("sweeps", [])
    seen = set()
    for i, spec in enumerate(specs):
        at = f"plots.sweeps[{i}]"
        if spec["name"] in seen:
            raise ConfigError(f"invalid config at {at}.name: two sweep plots are named {spec['name']!r}")
        seen.add(spec["name"])
        names = {e.name for e in study.experiments}
        unknown = sorted(set(spec.get("experiments") or []) - names)
        if unknown:
            raise ConfigError(f"invalid config at {at}.experiments: unknown experiments {unknown}; "
                              f"allowed values: {', '.join(sorted(names))}")
        exps = experiments_of(spec, study.experiments)
        metrics = set(ENGINE_METRICS)
        for e in exps:
            metrics |= set(target_class(e.target).metrics_for(e.params))
            cur = e.make_curation()
            metrics |= set(cur.metric_names()) if cur else set()
        if spec["metric"] not in metrics:
            raise ConfigError(f"invalid config at {at}.metric: no experiment it draws reports {spec['metric']!r}; "
                              f"allowed values: {', '.join(sorted(metrics))}")
        columns = set()
        for c in study.chains:
            if c.experiment in exps:
                columns |= set(c.columns())
        columns |= {"generation"} if spec.get("x") == "generation" else set()
        if spec.get("x") == "generation" and spec.get("y"):
            raise ConfigError(f"invalid config at {at}.y: curves over generations (x: generation) take no y")
        for key in ("x", "y", "panels", "lines"):
            if spec.get(key) is not None and spec[key] not in columns:
                raise ConfigError(f"invalid config at {at}.{key}: {spec[key]!r} is not a setting of these "
                                  f"experiments; allowed values: {', '.join(sorted(columns))}")
        if spec.get("relative") and spec.get("x") != "generation":
            raise ConfigError(f"invalid config at {at}.relative: a ratio to generation 0 is for curves (x: generation)")
        if spec.get("generation") is not None:
            if spec.get("statistic", "last") != "last" or spec.get("x") == "generation":
                raise ConfigError(f"invalid config at {at}.generation: a generation is for the statistic last "
                                  "against a swept setting")
            short = sorted(e.label for e in exps if e.generations < spec["generation"])
            if short:
                raise ConfigError(f"invalid config at {at}.generation: experiments {short} stop before generation "
                                  f"{spec['generation']}")
        if spec.get("statistic") == "time_to" and spec.get("threshold") is None:
            raise ConfigError(f"invalid config at {at}: statistic time_to needs a threshold")
    return specs


# -- the numbers --------------------------------------------------------------------------------------------
def _statistic(gens: np.ndarray, values: np.ndarray, spec: dict) -> tuple[float, bool]:
    """(the summary of one chain's metric over generations, whether it is censored by the last generation)."""
    stat = spec.get("statistic", "last")
    if stat == "last":
        if spec.get("generation") is None:
            return float(values[-1]), False
        at = np.flatnonzero(gens == spec["generation"])
        if not at.size:
            raise ValueError(f"sweep plot {spec['name']!r}: no row at generation {spec['generation']}")
        return float(values[at[0]]), False
    if stat == "mean_time":
        if not np.array_equal(gens, np.arange(gens[0], gens[0] + gens.size)) or gens[0] != 0:
            raise ValueError("statistic mean_time needs the metric at every generation from 0")
        return float(np.sum(1.0 - values)), bool(values[-1] < 1)
    thr = float(spec["threshold"])
    hit = values >= thr if spec.get("crossing", "below") == "above" else values <= thr
    return (float(gens[np.argmax(hit)]), False) if hit.any() else (float("nan"), True)


def experiment_records(study, target: Optional[str] = None) -> list[dict]:
    """The study's experiments as the plot, sweep and claims jobs read them (JSON-able: a rule's params)."""
    return [{"label": e.label, "name": e.name, "target": e.target,
             "params": results_settings(target_class(e.target).params_schema, e.params), "n": e.n, "lam": e.lam,
             "generations": e.generations, "curation": e.curation, "regimes": [r.to_spec() for r in e.regimes]}
            for e in study.experiments if target is None or e.target == target]


def theory_value(spec: dict, exp: dict, regime_spec, generation: Optional[int] = None) -> Optional[float]:
    """The closed form of the summary for one (experiment, regime), or None; ``generation``: the metric's at that
    generation instead of the last."""
    target = make_target(exp["target"], exp["params"])
    regime = R.from_spec(regime_spec)
    stat = spec.get("statistic", "last")
    if stat == "last":
        generation = spec.get("generation") if generation is None else generation
        G = int(exp["generations"] if generation is None else generation)
        value = closed_form(target, spec["metric"], np.array([G]), regime, exp["n"], exp["lam"], exp.get("curation"))
        return None if value is None else float(np.asarray(value)[0])
    if stat == "mean_time":
        return expected_time(target, spec["metric"], regime, exp["n"], exp["lam"], exp.get("curation"))
    return None


def curve_table(sub, spec: dict, exps: dict):
    """``x: generation``: one row per (panel, line, generation): mean, min, max over seeds and the closed form."""
    import pandas as pd

    keys = list(dict.fromkeys(k for k in (spec.get("panels"), spec.get("lines", "regime")) if k))
    frames = []
    for (label, regime), g in sub.groupby(["experiment", "regime"], sort=False):
        exp = exps[label]
        regime_spec = next(r for r in exp["regimes"] if R.from_spec(r).label == regime)
        wide = g.pivot_table(index="generation", columns="seed", values="value")
        gens = wide.index.to_numpy()
        theory = closed_form(make_target(exp["target"], exp["params"]), spec["metric"], gens, R.from_spec(regime_spec),
                             exp["n"], exp["lam"], exp.get("curation"))
        if spec.get("relative"):  # a risk ratio: each seed by its own generation 0, the theory by its own
            if gens[0] != 0:
                raise ValueError(f"sweep plot {spec['name']!r}: a ratio to generation 0 needs generation 0's rows")
            wide = wide / wide.iloc[0]
            theory = None if theory is None else np.asarray(theory, float) / np.asarray(theory, float)[0]
        frame = pd.DataFrame({"generation": gens, "measured": wide.mean(axis=1).to_numpy(),
                              "measured_min": wide.min(axis=1).to_numpy(), "measured_max": wide.max(axis=1).to_numpy(),
                              "seeds": wide.shape[1], "theory": np.nan if theory is None else np.asarray(theory, float),
                              "censored": False, "regime_kind": R.from_spec(regime_spec).kind, "experiments": label})
        for k in keys:
            if k in frame:
                frame[k] = g[k].iloc[0]
            else:
                frame.insert(0, k, g[k].iloc[0])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _rows_of(table, spec: dict, experiments: Sequence[dict]):
    exps = {e["label"]: e for e in experiments_of(spec, experiments)}
    sub = table[(table["metric"] == spec["metric"]) & table["experiment"].isin(list(exps))]
    if sub.empty:
        raise ValueError(f"no rows of metric {spec['metric']!r} for the experiments of sweep plot {spec['name']!r}")
    return sub, exps


def sweep_table(table, spec: dict, experiments: Sequence[dict]):
    """One row per (panel, line, x, y): measured mean, min, max over seeds, theory, censored."""
    if spec["x"] == "generation":
        sub, exps = _rows_of(table, spec, experiments)
        return curve_table(sub, spec, exps)
    per_seed = per_seed_table(table, spec, experiments)
    keys = [k for k in (spec.get("panels"), spec.get("lines", "regime"), spec["x"], spec.get("y")) if k]
    group = list(dict.fromkeys(keys))
    aggs = dict(measured=("value", "mean"), measured_min=("value", "min"), measured_max=("value", "max"),
                seeds=("seed", "nunique"), theory=("theory", "mean"), censored=("censored", "any"),
                regime_kind=("regime_kind", "first"), experiments=("experiment", lambda s: " ".join(sorted(set(s)))))
    aggs = {k: v for k, v in aggs.items() if k not in group}
    return per_seed.groupby(group, sort=True, dropna=False).agg(**aggs).reset_index()


def per_seed_table(table, spec: dict, experiments: Sequence[dict]):
    """One row per (experiment, regime, seed) of a sweep over a setting: the sweep's columns, the chain's summary
    (``value``), whether it is censored, and the theory (what :func:`sweep_table` averages, and slope claims
    fit)."""
    import pandas as pd

    sub, exps = _rows_of(table, spec, experiments)
    keys = [k for k in (spec.get("panels"), spec.get("lines", "regime"), spec["x"], spec.get("y")) if k]
    rows = []
    for (label, regime, seed), g in sub.groupby(["experiment", "regime", "seed"], sort=False):
        g = g.sort_values("generation")
        value, censored = _statistic(g["generation"].to_numpy(), g["value"].to_numpy(dtype=float), spec)
        exp = exps[label]
        regime_spec = next(r for r in exp["regimes"] if R.from_spec(r).label == regime)
        row = {k: g[k].iloc[0] for k in dict.fromkeys(keys)}
        row.update(experiment=label, regime=regime, regime_kind=R.from_spec(regime_spec).kind, seed=seed,
                   value=value, censored=censored, theory=theory_value(spec, exp, regime_spec))
        rows.append(row)
    per_seed = pd.DataFrame(rows)
    per_seed["theory"] = per_seed["theory"].astype(float)
    return per_seed


# -- the figure ---------------------------------------------------------------------------------------------
def line_colours(lines: Sequence, kinds: Sequence[str]) -> dict:
    """A colour per line: the first line of each regime kind gets the kind's fixed colour, others the next free."""
    out, used, spare = {}, set(), iter(OTHER_COLOURS * 4)
    for line, kind in zip(lines, kinds):
        if kind in KIND_COLOURS and kind not in used:
            out[line] = KIND_COLOURS[kind]
            used.add(kind)
        else:
            out[line] = next(spare)
    return out


def plot_sweep(metrics_csv, spec: dict, experiments: Sequence[dict], out_png, out_csv) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = read_study(metrics_csv)
    data = sweep_table(table, spec, experiments)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(out_csv, index=False)
    panel_key, line_key, x, y = spec.get("panels"), spec.get("lines", "regime"), spec["x"], spec.get("y")
    stat = spec.get("statistic", "last")
    curves = x == "generation"
    at = "the last generation" if spec.get("generation") is None else f"generation {spec['generation']}"
    curve_label = f"{spec['metric']} / its generation-0 value" if spec.get("relative") else spec["metric"]
    ylabel = curve_label if curves else {"last": f"{spec['metric']} at {at}", "mean_time": f"mean time until {spec['metric']} = 1",
              "time_to": f"generations until {spec['metric']} {'>=' if spec.get('crossing') == 'above' else '<='} "
                         f"{spec.get('threshold')}"}[stat]
    marker = None if curves else "o"
    panels = sorted(data[panel_key].unique()) if panel_key else [None]
    lines = list(dict.fromkeys(data[line_key]))
    colours = line_colours(lines, [data.loc[data[line_key] == lv, "regime_kind"].iloc[0] for lv in lines])
    names = {lv: (f"{lv}" if line_key in ("regime", "regime_kind", "experiment") else f"{line_key} = {lv}")
             for lv in lines}
    if y is None:
        ncols = min(3, len(panels))
        nrows = math.ceil(len(panels) / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.8 * ncols, 3.6 * nrows), squeeze=False)
        for ax, pv in zip(axes.flat, panels):
            sub = data if pv is None else data[data[panel_key] == pv]
            for i, lv in enumerate(lines):
                d = sub[sub[line_key] == lv].sort_values(x)
                if d.empty:
                    continue
                colour = colours[lv]
                err = np.vstack([d["measured"] - d["measured_min"], d["measured_max"] - d["measured"]])
                if curves:
                    ax.plot(d[x], d["measured"], color=colour, lw=1.3, label=names[lv])
                    if d["seeds"].max() > 1:
                        ax.fill_between(d[x], d["measured_min"], d["measured_max"], color=colour, alpha=0.2, lw=0)
                else:
                    ax.errorbar(d[x], d["measured"], yerr=err if d["seeds"].max() > 1 else None, color=colour,
                                marker=marker, ms=4, lw=1.3, capsize=2, label=names[lv])
                cens = d[d["censored"]]
                if not cens.empty:
                    ax.plot(cens[x], cens["measured"], "o", mfc="white", mec=colour, ms=7, zorder=3)
                th = d.dropna(subset=["theory"])
                if not th.empty:  # a single point (a law at generation 0 only) as a cross
                    ax.plot(th[x], th["theory"], "--", color=colour, lw=1, alpha=0.9, label=f"theory ({names[lv]})",
                            marker="x" if len(th) == 1 else None, ms=8, mew=1.5)
            for line in spec.get("hlines") or []:
                ax.axhline(line["y"], color="0.3", ls=":", lw=1.2, label=line.get("label") or f"{line['y']:g}")
            if data["censored"].any():
                ax.plot([], [], "o", mfc="white", mec="k", label="not reached by the last generation (lower bound)")
            ax.set_xlabel(x)
            ax.set_ylabel(ylabel)
            if spec.get("logx"):
                ax.set_xscale("log")
            if spec.get("logy"):
                ax.set_yscale("log")
            ax.set_title(f"{panel_key} = {pv}" if pv is not None else spec["name"], fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
    else:
        combos = [(pv, lv) for pv in panels for lv in lines
                  if not (data[line_key] == lv).sum() == 0 and (pv is None or ((data[panel_key] == pv) & (data[line_key] == lv)).any())]
        ncols = min(3, len(combos))
        nrows = math.ceil(len(combos) / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.2 * nrows), squeeze=False)
        for ax, (pv, lv) in zip(axes.flat, combos):
            sub = data[data[line_key] == lv]
            if pv is not None:
                sub = sub[sub[panel_key] == pv]
            xs, ys = sorted(sub[x].unique()), sorted(sub[y].unique())
            grid = np.full((len(ys), len(xs)), np.nan)
            theory = np.full_like(grid, np.nan)
            for _, r in sub.iterrows():
                grid[ys.index(r[y]), xs.index(r[x])] = r["measured"]
                theory[ys.index(r[y]), xs.index(r[x])] = r["theory"]
            norm = None
            finite = grid[np.isfinite(grid)]
            if spec.get("logz") and finite.size and finite.min() > 0:
                norm = matplotlib.colors.LogNorm()
            im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis", norm=norm)
            for (i, j), v in np.ndenumerate(grid):
                if np.isfinite(v):
                    text = f"{v:.3g}" + (f"\n({theory[i, j]:.3g})" if np.isfinite(theory[i, j]) else "")
                    ax.text(j, i, text, ha="center", va="center", fontsize=6, color="k" if im.norm(v) > 0.6 else "w")
            ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs], fontsize=7)
            ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys], fontsize=7)
            ax.set_xlabel(x)
            ax.set_ylabel(y)
            title = names[lv] + (f", {panel_key} = {pv}" if pv is not None else "")
            ax.set_title(f"{title}\n{ylabel} (theory in brackets)", fontsize=8)
            fig.colorbar(im, ax=ax, shrink=0.8)
        for ax in list(axes.flat)[len(combos):]:
            ax.set_visible(False)
    fig.tight_layout()
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
