"""Metric plots as users read them: integer generation ticks, markers on short lines, units, the seed count."""
import numpy as np
import pandas as pd
import pytest

from ouroboros.plots import metric_figure


def _table(seeds, generations, regimes=("replace", "accumulate")):
    rows = [{"experiment": "gauss", "regime": r, "seed": s, "generation": g, "metric": "kl_truth_model",
             "value": 0.1 * (g + 1) + 0.01 * s} for r in regimes for s in range(seeds) for g in range(generations + 1)]
    return pd.DataFrame(rows)


EXP = [{"label": "gauss", "name": "gauss", "target": "gaussian", "params": {"d": 1}, "n": 10, "lam": 1.0,
        "generations": 5, "curation": None, "regimes": [{"kind": "replace"}, {"kind": "accumulate"}]}]


def test_short_lines_have_markers_integer_ticks_and_units():
    fig = metric_figure(_table(3, 5), "kl_truth_model", EXP, unit="nats")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "kl_truth_model (nats)"
    ticks = [t for t in ax.get_xticks() if 0 <= t <= 5]
    assert ticks and all(float(t).is_integer() for t in ticks)
    lines = [ln for ln in ax.get_lines() if ln.get_label() in ("replace", "accumulate")]
    assert len(lines) == 2 and all(ln.get_marker() == "o" for ln in lines)
    assert "3 seeds, band min-max" in ax.get_title()
    colours = {ln.get_label(): ln.get_color() for ln in lines}
    assert colours["replace"] != colours["accumulate"]


def test_one_seed_says_there_is_no_band_and_long_lines_have_no_markers():
    fig = metric_figure(_table(1, 60), "kl_truth_model", EXP)
    ax = fig.axes[0]
    assert "1 seed: no band" in ax.get_title()
    assert ax.get_ylabel() == "kl_truth_model"
    lines = [ln for ln in ax.get_lines() if ln.get_label() == "replace"]
    assert lines[0].get_marker() in (None, "None", "")
    assert not ax.collections  # no band drawn


def test_a_regime_kind_has_the_same_colour_in_every_panel():
    exps = [dict(EXP[0], label=f"gauss{i}", regimes=regs) for i, regs in
            enumerate([[{"kind": "replace"}, {"kind": "accumulate"}], [{"kind": "accumulate"}]])]
    table = pd.concat([_table(2, 3).assign(experiment="gauss0"),
                       _table(2, 3, regimes=("accumulate",)).assign(experiment="gauss1")])
    fig = metric_figure(table, "kl_truth_model", exps)
    colour = [next(ln.get_color() for ln in ax.get_lines() if ln.get_label() == "accumulate") for ax in fig.axes[:2]]
    assert colour[0] == colour[1]
    assert np.isfinite(table.value).all()
    with pytest.raises(ValueError, match="no experiment"):
        metric_figure(table, "no_such_metric", exps)
