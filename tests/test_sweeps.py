"""Sweep plots: summaries of a metric per chain (last value, mean time to 1, time to a threshold), the
theory beside them, config checks, and the figures end to end."""
import numpy as np
import pandas as pd
import pytest

from conftest import run_snakemake
from ouroboros.config import Study
from ouroboros.settings import ConfigError
from ouroboros.sweeps import check_specs, sweep_table


def _table(rows):
    return pd.DataFrame(rows, columns=["experiment", "regime", "regime_kind", "seed", "generation", "metric", "value",
                                       "n", "lam", "K"])


def _experiment(label, n, K=2):
    return {"label": label, "name": label.split("_")[0], "target": "categorical", "params": {"K": K}, "n": n,
            "lam": 1.0, "generations": 3, "curation": None, "regimes": [{"kind": "replace"}]}


def test_statistics_per_chain_then_over_seeds():
    rows = []
    # experiment a (n = 5): seed 0 fixes at generation 2, seed 1 at generation 1 (the CDF of fixation over 0..3)
    for seed, cdf in ((0, [0, 0, 1, 1]), (1, [0, 1, 1, 1])):
        rows += [("a", "replace", "replace", seed, g, "fixed", v, 5, 1.0, 2) for g, v in enumerate(cdf)]
    # experiment b (n = 50): never fixed by generation 3: a censored lower bound
    rows += [("b", "replace", "replace", 0, g, "fixed", v, 50, 1.0, 2) for g, v in enumerate([0, 0.1, 0.2, 0.3])]
    table = _table(rows)
    exps = [_experiment("a", 5), _experiment("b", 50)]
    spec = {"name": "t", "metric": "fixed", "statistic": "mean_time", "x": "n"}
    out = sweep_table(table, spec, exps).set_index("n")
    assert out.loc[5, "measured"] == pytest.approx(1.5)  # (2 + 1) / 2
    assert (out.loc[5, "measured_min"], out.loc[5, "measured_max"]) == (1, 2)
    assert out.loc[50, "measured"] == pytest.approx(4 - 0.6) and out.loc[50, "censored"]
    assert not out.loc[5, "censored"]
    # theory: the exact two-category Markov-chain value for each n
    from ouroboros.targets.categorical import fixation_time_two_categories

    assert out.loc[5, "theory"] == pytest.approx(fixation_time_two_categories(5, 0.5))
    last = sweep_table(table, dict(spec, statistic="last"), exps).set_index("n")
    assert last.loc[50, "measured"] == pytest.approx(0.3) and np.isnan(last.loc[50, "theory"])
    cross = sweep_table(table, dict(spec, statistic="time_to", threshold=0.5, crossing="above"), exps).set_index("n")
    assert cross.loc[5, "measured"] == pytest.approx(1.5) and np.isnan(cross.loc[50, "measured"])


def test_a_chosen_generation_and_a_ratio_to_generation_zero():
    """``generation: g`` summarises each chain by its value at g (and the theory at g); ``relative`` divides each
    seed's curve by its own generation 0 (and the theory by its own)."""
    rows = []
    for seed, values in ((0, [2.0, 4.0, 6.0, 8.0]), (1, [4.0, 4.0, 8.0, 8.0])):
        rows += [("a", "replace", "replace", seed, g, "heterozygosity", v, 5, 1.0, 2) for g, v in enumerate(values)]
    table = _table(rows)
    exps = [_experiment("a", 5)]
    at0 = sweep_table(table, {"name": "t", "metric": "heterozygosity", "x": "n", "generation": 0}, exps)
    assert at0["measured"].iloc[0] == pytest.approx(3.0)
    assert at0["theory"].iloc[0] == pytest.approx(0.5 * (1 - 1 / 5))  # H_truth (1 - 1/n)^(0 + 1), K = 2
    curves = sweep_table(table, {"name": "t", "metric": "heterozygosity", "x": "generation", "relative": True}, exps)
    assert curves["measured"].tolist() == pytest.approx([1.0, 1.5, 2.5, 3.0])  # seed 0: 1, 2, 3, 4; seed 1: 1, 1, 2, 2
    assert curves["theory"].tolist() == pytest.approx([(1 - 1 / 5) ** g for g in range(4)])


def test_a_gap_in_generations_is_refused_for_mean_time():
    table = _table([("a", "replace", "replace", 0, g, "fixed", 0.0, 5, 1.0, 2) for g in (0, 1, 3)])
    with pytest.raises(ValueError, match="every generation"):
        sweep_table(table, {"name": "t", "metric": "fixed", "statistic": "mean_time", "x": "n"}, [_experiment("a", 5)])


BASE = {"study": "s", "tracking": {"enabled": False}, "generations": 3,
        "experiments": [{"name": "wf", "target": "categorical", "n": 10, "replicates": 5, "sweep": {"K": [2, 3]}}]}


@pytest.mark.parametrize("sweep,message", [
    ({"name": "a", "metric": "nope", "x": "K"}, "plots.sweeps[0].metric: no experiment it draws reports 'nope'"),
    ({"name": "a", "metric": "fixed", "x": "depth"}, "plots.sweeps[0].x: 'depth' is not a setting"),
    ({"name": "a", "metric": "fixed", "x": "K", "experiments": ["other"]}, "unknown experiments ['other']"),
    ({"name": "a", "metric": "fixed", "x": "K", "statistic": "time_to"}, "time_to needs a threshold"),
    ({"name": "a", "metric": "fixed", "x": "generation", "y": "K"}, "take no y"),
    ({"name": "a", "metric": "fixed", "x": "K", "relative": True}, "a ratio to generation 0 is for curves"),
    ({"name": "a", "metric": "fixed", "x": "K", "generation": 7}, "stop before generation 7"),
    ({"name": "a", "metric": "fixed", "x": "K", "generation": 1, "statistic": "mean_time"},
     "a generation is for the statistic last"),
])
def test_bad_sweep_plots_are_refused_naming_the_key(sweep, message):
    cfg = dict(BASE, plots={"sweeps": [sweep]})
    with pytest.raises(ConfigError, match="invalid config at") as e:
        check_specs(Study.from_config(cfg))
    assert message in str(e.value)


@pytest.mark.e2e
def test_sweep_plots_end_to_end(tmp_path):
    """A Wright-Fisher sweep over n (fixation time against the Markov-chain value), a linear-regression curve
    figure with its two closed forms, and a heatmap over two settings."""
    cfg = {"study": "theory", "tracking": {"enabled": False}, "seeds": [0], "generations": 60,
           "experiments": [
               {"name": "wf", "target": "categorical", "n": 6, "replicates": 800, "params": {"K": 2},
                "regimes": ["replace", {"kind": "mix", "rho": 0.5}], "sweep": {"n": [4, 8]}},
               {"name": "lr", "target": "linreg", "n": 20, "replicates": 300, "generations": 8,
                "params": {"d": 3}, "regimes": ["replace", "accumulate"]},
               {"name": "mad", "target": "gaussian", "n": 20, "replicates": 400, "generations": 8,
                "regimes": [{"kind": "mix", "n_real": 5, "n_synthetic": 20, "fresh": True}],
                "sweep": {"regime.n_real": [5, 10], "lam": [1.0, 0.8]}}],
           "plots": {"sweeps": [
               {"name": "fixation", "experiments": ["wf"], "metric": "fixed", "statistic": "mean_time", "x": "n"},
               {"name": "lr-error", "experiments": ["lr"], "metric": "w_error_mean", "x": "generation"},
               {"name": "mad-phase", "experiments": ["mad"], "metric": "var_mean", "x": "n_real", "y": "lam",
                "lines": "regime_kind"}]}}
    run_snakemake(tmp_path, cfg, "--cores", "2")
    sweeps = tmp_path / "results/theory/plots/sweeps"
    assert all((sweeps / f"{n}.png").stat().st_size > 5000 for n in ("fixation", "lr-error", "mad-phase"))
    fix = pd.read_csv(sweeps / "fixation.csv")
    rep = fix[fix.regime == "replace"].set_index("n")
    assert rep["theory"].notna().all() and not rep["censored"].any()
    # 800 replicate chains: the mean fixation time is within 15% of the exact value
    assert np.allclose(rep["measured"], rep["theory"], rtol=0.15), rep
    mix = fix[fix.regime == "mix-rho0.5"]
    assert mix["censored"].all() and mix["theory"].isna().all()  # real data: never fixed
    lr = pd.read_csv(sweeps / "lr-error.csv")
    assert set(lr.regime) == {"replace", "accumulate"} and lr["theory"].notna().all()
    phase = pd.read_csv(sweeps / "mad-phase.csv")
    assert len(phase) == 4 and np.allclose(phase["measured"], phase["theory"], rtol=0.1)
    run_snakemake(tmp_path, cfg, "--report", "report.html")
    assert "Sweeps" in (tmp_path / "report.html").read_text()
