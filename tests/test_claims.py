"""Claims as data (ouroboros.claims): each check's per-seed numbers, its 95% t-interval and verdict, the seeds an
undecided check needs, and the claims job through Snakemake."""
import math

import numpy as np

import pandas as pd
import pytest

from conftest import run_snakemake
from ouroboros import claims as C


def _claim(**check):
    return C.parse([{"statement": "s", "definition": 5, "check": check}])[0]


def _table(rows):
    """(regime, seed, generation, value) rows of one metric of experiment e."""
    return pd.DataFrame([{"experiment": "e", "regime": r, "seed": s, "generation": g, "metric": "m", "value": v}
                         for r, s, g, v in rows])


def test_the_interval_is_the_t_interval_of_the_seeds_mean():
    mean, low, high = C.interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and math.isclose(high - mean, 4.302652729911275 * 1.0 / math.sqrt(3), rel_tol=1e-9)
    assert math.isnan(C.interval([1.0])[1])


@pytest.mark.parametrize("values,expected,tolerance,verdict", [
    ([0.36, 0.37, 0.365], 0.366, 0.03, "holds"),      # the interval inside the band
    ([0.50, 0.51, 0.505], 0.366, 0.03, "fails"),      # the interval outside it
    ([0.30, 0.40, 0.35], 0.366, 0.03, "inconclusive"),  # straddles its edge
    ([0.366], 0.366, 0.03, "inconclusive"),           # one seed: no interval, never holds
])
def test_a_value_check(values, expected, tolerance, verdict):
    table = _table([("r", s, 5, v) for s, v in enumerate(values)])
    claim = _claim(kind="value", experiment="e", regime="r", metric="m", generation=5, expected=expected,
                   tolerance=tolerance)
    row = C.evaluate([claim], table)[0]
    assert row["verdict"] == verdict and row["n"] == len(values)
    assert (row["seeds_needed"] == "") == (verdict != "inconclusive")


def test_direction_order_and_bounded_are_read_per_seed():
    rows = [("a", s, g, v) for s, (v0, v1) in enumerate([(1.0, 2.0), (1.1, 2.3), (0.9, 1.8)]) for g, v in ((0, v0), (4, v1))]
    rows += [("b", s, 4, v) for s, v in enumerate([1.0, 1.2, 0.9])]
    table = _table(rows)
    rises = _claim(kind="direction", experiment="e", regime="a", metric="m", **{"from": 0}, to=4, expect="rises")
    falls = _claim(kind="direction", experiment="e", regime="a", metric="m", **{"from": 0}, to=4, expect="falls")
    order = _claim(kind="order", experiment="e", metric="m", generation=4, above="a", below="b")
    under = _claim(kind="bounded", experiment="e", regime="a", metric="m", to=4, level=3.0)
    over = _claim(kind="bounded", experiment="e", regime="a", metric="m", to=4, level=1.0)
    verdicts = [r["verdict"] for r in C.evaluate([rises, falls, order, under, over], table)]
    assert verdicts == ["holds", "fails", "holds", "holds", "fails"]
    assert C.evaluate([rises], table)[0]["measured"] == pytest.approx((1.0 + 1.2 + 0.9) / 3)


def test_an_order_can_compare_two_experiments_paired_by_seed():
    table = _table([("r", s, 4, v) for s, v in enumerate([1.0, 1.2, 0.9])])
    other = _table([("r", s, 4, v) for s, v in enumerate([2.0, 1.9, 2.1])]).assign(experiment="f")
    table = pd.concat([table, other], ignore_index=True)
    order = _claim(kind="order", metric="m", generation=4, above={"experiment": "f", "regime": "r"},
                   below={"experiment": "e", "regime": "r"})
    row = C.evaluate([order], table)[0]
    assert row["verdict"] == "holds" and row["measured"] == pytest.approx((1.0 + 0.7 + 1.2) / 3)
    assert row["check"] == "m at generation 4: f/r - e/r"
    mixed = _claim(kind="order", experiment="e", metric="m", generation=4, above={"experiment": "f", "regime": "r"},
                   below="r")
    assert C.evaluate([mixed], table)[0]["measured"] == row["measured"]


def test_an_undecided_check_says_how_many_seeds_would_decide_it():
    values = [0.1, -0.05, 0.2, 0.0]  # mean 0.0625, sd 0.111: t-interval [-0.11, 0.24]
    need = C.seeds_needed(values, (0.0,))
    sd = pd.Series(values).std()
    assert need > len(values)
    half = lambda m: C._t(m) * sd / math.sqrt(m)  # noqa: E731
    assert half(need) < 0.0625 <= half(need - 1)
    table = _table([("r", s, g, v) for s, v in enumerate(values) for g, v in ((0, 0.0), (1, v))])
    row = C.evaluate([_claim(kind="direction", experiment="e", regime="r", metric="m", **{"from": 0}, to=1,
                             expect="rises")], table)[0]
    assert row["verdict"] == "inconclusive" and row["seeds_needed"] == need


def test_free_text_claims_check_nothing_and_the_counts_read_well():
    assert C.parse("Fig. 1 holds") == []
    assert C.counts([{"verdict": "holds"}] * 3 + [{"verdict": "inconclusive"}]) == "3 hold, 1 inconclusive"
    assert C.counts([{"verdict": "fails"}]) == "1 fails"


@pytest.mark.e2e
def test_the_claims_job_writes_the_table_and_the_closing_line_counts_it(tmp_path):
    cfg = {"study": "claimed", "seeds": [0, 1, 2], "generations": 30, "tracking": {"enabled": False},
           "experiments": [{"name": "g", "target": "gaussian", "n": 10, "replicates": 2000,
                            "regimes": ["replace", "accumulate"]}],
           "claims": [
               {"statement": "the variance shrinks as (1 - 1/n)^t", "source": "docs/theory.md", "definition": 5,
                "check": {"kind": "value", "experiment": "g", "regime": "replace", "metric": "var_ratio_mean",
                          "generation": 30, "expected": 0.9 ** 30, "tolerance": 0.02}},
               {"statement": "accumulating keeps more of it", "definition": 5,
                "check": {"kind": "order", "experiment": "g", "metric": "var_ratio_mean", "generation": 30,
                          "above": "accumulate", "below": "replace"}},
               {"statement": "it grows", "check": {"kind": "direction", "experiment": "g", "regime": "replace",
                                                   "metric": "var_ratio_mean", "from": 0, "to": 30, "expect": "rises"}}]}
    proc = run_snakemake(tmp_path, cfg, "--cores", "2")
    table = pd.read_csv(tmp_path / "results/claimed/claims.csv")
    assert list(table.columns) == C.COLUMNS
    assert list(table.verdict) == ["holds", "holds", "fails"]
    assert (table.n == 3).all() and table.definition[0] == "5 collapsing variance"
    assert table.low[0] <= table.measured[0] <= table.high[0]
    assert f"claims: 2 hold, 1 fails ({tmp_path}/results/claimed/claims.csv)" in proc.stdout + proc.stderr
    # the report's first page: the counts and each claim's verdict (rendered from the config at report time only)
    run_snakemake(tmp_path, cfg, "--report", "report.html")
    html = (tmp_path / "report.html").read_text()
    assert "Claims checked: 2 hold, 1 fails" in html and "<strong>fails</strong>: it grows" in html
    # the MLflow study run's description
    note = C.note(tmp_path / "results/claimed/claims.csv")
    assert note.startswith("**Claims checked: 2 hold, 1 fails**") and "- **fails**: it grows" in note
    assert "claims_verdicts" not in (tmp_path / "results/claimed/settings.csv").read_text()


def test_a_study_file_does_not_inherit_the_default_studys_claims(tmp_path):
    """config/config.yaml's claims name the default study's experiments: a study file that names its own study
    and no claims checks none (they were merged in by Snakemake's reading and refused); one that changes only
    seeds keeps them."""
    from conftest import REPO
    from ouroboros import preflight

    own = tmp_path / "own.yaml"
    own.write_text("study: own\nexperiments: [{target: gaussian, n: 10, regimes: [replace]}]\ngenerations: 2\n")
    assert preflight.check_files([own], REPO, tmp_path).study.config["claims"] == ""
    seeds = tmp_path / "seeds.yaml"
    seeds.write_text("seeds: [0, 1, 2, 3]\n")
    kept = preflight.check_files([seeds], REPO, tmp_path).study.config["claims"]
    assert isinstance(kept, list) and len(kept) == 8


def _sweep_rows(seeds_slopes, ns=(10, 100, 1000), K=2):
    """(the metrics rows, experiments) of a sweep of n: experiment a{n}'s metric ``last`` is c * n^slope per seed."""
    rows, exps = [], []
    for n in ns:
        exps.append({"label": f"a{n}", "name": f"a{n}", "target": "categorical", "params": {"K": K}, "n": n,
                     "lam": 1.0, "generations": 1, "curation": None, "regimes": [{"kind": "replace"}]})
        for seed, (c, slope) in enumerate(seeds_slopes):
            rows += [{"experiment": f"a{n}", "regime": "replace", "seed": seed, "generation": g, "metric": "m",
                      "value": c * n ** slope, "n": n, "K": K} for g in (0, 1)]
    return pd.DataFrame(rows), exps


@pytest.mark.parametrize("slopes,check,verdict", [
    ([(1.0, 0.98), (2.0, 1.01), (0.5, 1.0)], {"expected": 1.0, "tolerance": 0.1}, "holds"),
    ([(1.0, 0.5), (2.0, 0.52), (0.5, 0.49)], {"expected": 1.0, "tolerance": 0.1}, "fails"),
    ([(1.0, 0.5), (2.0, 0.52), (0.5, 0.49)], {"expect": "rises"}, "holds"),
    ([(1.0, -0.5), (2.0, 0.52)], {"expect": "rises"}, "inconclusive"),
])
def test_a_slope_check_fits_log_value_on_log_x_per_seed(slopes, check, verdict):
    table, exps = _sweep_rows(slopes)
    sweeps = {"w": {"name": "w", "metric": "m", "statistic": "last", "x": "n", "panels": "K"}}
    claim = _claim(kind="slope", sweep="w", where={"K": 2}, **check)
    row = C.evaluate([claim], table, sweeps=sweeps, experiments=exps)[0]
    assert row["verdict"] == verdict and row["n"] == len(slopes)
    assert row["measured"] == pytest.approx(sum(s for _, s in slopes) / len(slopes))
    assert "log-log slope of sweep w against its x (K = 2)" == row["check"]
    with pytest.raises(ValueError, match="two or more points"):  # a where that leaves one x per seed
        C.evaluate([_claim(kind="slope", sweep="w", where={"experiment": "a10"}, **check)], table, sweeps=sweeps,
                   experiments=exps)


def test_expected_closed_form_is_the_targets_theory_and_a_slopes_is_the_theorys_slope():
    """value: the Gaussian's closed form (1 - 1/n)^t at the generation; slope: the exact two-category
    fixation times' log-log slope over the sweep's n (the same numbers the sweep plot draws dashed)."""
    from ouroboros.targets.categorical import fixation_time_two_categories

    exp = {"label": "g", "name": "g", "target": "gaussian", "params": {"d": 1, "ddof": 0}, "n": 100, "lam": 1.0,
           "generations": 5, "curation": None, "regimes": [{"kind": "replace"}]}
    claim = _claim(kind="value", experiment="g", regime="replace", metric="var_ratio_mean", generation=5,
                   expected="closed_form", tolerance=0.01, relative=True)
    theory = C.closed_form_value(claim.check, [exp])
    assert theory == pytest.approx((99 / 100) ** 5, rel=1e-9)  # the variance against generation 0's fit
    table = pd.DataFrame([{"experiment": "g", "regime": "replace", "seed": s, "generation": 5,
                           "metric": "var_ratio_mean", "value": theory * (1 + d)} for s, d in enumerate((-1e-3, 0, 1e-3))])
    row = C.evaluate([claim], table, experiments=[exp])[0]
    assert row["verdict"] == "holds" and row["expected"].startswith("closed form ") and "+/- 1%" in row["expected"]

    ns = (10, 100, 1000)
    table, exps = _sweep_rows([(1.0, 1.0), (1.0, 1.0)], ns=ns)
    exps = [dict(e, generations=1) for e in exps]
    sweeps = {"w": {"name": "w", "metric": "fixed", "statistic": "mean_time", "x": "n"}}
    table["metric"] = "fixed"
    slope = _claim(kind="slope", sweep="w", expected="closed_form", tolerance=0.1)
    resolved = C.resolve(slope, table, sweeps, exps)
    exact = [fixation_time_two_categories(n, 0.5) for n in ns]
    assert resolved.check["expected"] == pytest.approx(float(np.polyfit(np.log(ns), np.log(exact), 1)[0]))


def test_the_readmes_reference_table_is_the_one_the_records_give():
    """README.md's reference table is written by `ouroboros claims --table` from docs/claims/*.csv: a figure
    edited by hand, or a record not rewritten into the README, fails here."""
    from pathlib import Path

    from ouroboros import reference

    repo = Path(__file__).resolve().parents[1]
    assert sorted((repo / reference.RECORDS).glob("*.csv")), "no claims recorded in docs/claims/"
    assert reference.current(repo / "README.md", repo), "README's reference table is stale: ouroboros claims --table"


def test_claims_table_records_a_run_and_rewrites_the_readme(tmp_path):
    from ouroboros import cli, reference

    (tmp_path / "README.md").write_text(f"# x\n\n{reference.BEGIN}\nold\n{reference.END}\n\nafter\n")
    results = tmp_path / "results" / "toy"
    results.mkdir(parents=True)
    rows = C.evaluate([_claim(kind="value", experiment="e", regime="r", metric="m", generation=5, expected=0.366,
                              tolerance=0.03)], _table([("r", s, 5, v) for s, v in enumerate([0.36, 0.37, 0.365])]),
                      commit="abc123")
    pd.DataFrame(rows, columns=C.COLUMNS).to_csv(results / "claims.csv", index=False)
    assert cli.main(["claims", "--check", "--repo", str(tmp_path)]) == 1
    assert cli.main(["claims", "--table", "--repo", str(tmp_path), "--results", str(tmp_path / "results")]) == 0
    text = (tmp_path / "README.md").read_text()
    assert "| `toy` | s (; 5 collapsing variance) | 0.366 +/- 0.03 | 0.365 [0.353, 0.377], 3 | **holds** |" in text
    assert "`abc123`" in text and text.endswith("after\n") and "\nold\n" not in text
    assert cli.main(["claims", "--check", "--repo", str(tmp_path)]) == 0
    (tmp_path / "README.md").write_text(text.replace("0.365 [", "0.364 ["))  # a figure edited by hand
    assert cli.main(["claims", "--check", "--repo", str(tmp_path)]) == 1
    assert cli.main(["claims", "--table", "--repo", str(tmp_path), "--results", str(tmp_path / "results"),
                     "--study", "missing"]) == 1
