"""End to end: snakemake on tiny studies in temporary folders."""
import numpy as np
import warnings

import pandas as pd
import pytest

from ouroboros.tables import read_study
from conftest import run_snakemake, snakemake_log

pytestmark = pytest.mark.e2e

GMM = {"components": 2, "truth": "blob", "eval_size": 300, "test_size": 100}
TINY = {
    "study": "tiny",
    "tracking": {"enabled": False},
    "seeds": [0, 1],
    "generations": 6,
    "experiments": [
        {"name": "gauss", "target": "gaussian", "n": 20, "replicates": 50, "block": 3,
         "regimes": ["replace", "accumulate-subsample", {"kind": "mix", "rho": 0.2, "fresh": True}]},
        {"name": "gmm", "target": "gmm", "n": 60, "replicates": 1, "generations": 2, "block": 1,
         "regimes": ["accumulate"], "params": GMM},
    ],
}
N_GAUSS_METRICS, N_GMM_METRICS = 11 + 1, 10 + 1  # the target's and the engine's train_items


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny")
    run_snakemake(work, TINY, "--cores", "2")
    return work


def test_metrics_table(tiny):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a plain read_csv, no mixed-type warning
        table = pd.read_csv(tiny / "results/tiny/metrics.csv")
    assert list(table.columns) == ["study", "experiment", "target", "regime", "seed", "generation", "metric", "value"]
    settings = pd.read_csv(tiny / "results/tiny/settings.csv")
    assert {"experiment", "regime", "regime_kind", "n", "lam", "rho", "fresh", "replicates", "d"} <= set(settings.columns)
    assert len(settings) == len(settings.drop_duplicates(["experiment", "regime"])) == 3 + 1
    summary = pd.read_csv(tiny / "results/tiny/summary.csv")
    assert list(summary.columns) == ["experiment", "regime", "metric", "generation", "seeds", "mean", "min", "max"]
    assert len(summary) == 3 * N_GAUSS_METRICS + 1 * N_GMM_METRICS
    last = table[(table.experiment == "gauss") & (table.regime == "replace") & (table.metric == "std_mean")
                 & (table.generation == 6)]
    row = summary[(summary.experiment == "gauss") & (summary.regime == "replace") & (summary.metric == "std_mean")]
    assert row["generation"].item() == 6 and row["seeds"].item() == 2
    assert row["mean"].item() == pytest.approx(last.value.mean()) and row["max"].item() == last.value.max()
    expected = 3 * 2 * 7 * N_GAUSS_METRICS + 1 * 2 * 3 * N_GMM_METRICS
    assert len(table) == expected
    assert not table.duplicated(["experiment", "regime", "seed", "generation", "metric"]).any()
    assert set(table["regime"]) == {"replace", "accumulate-subsample", "mix-rho0.2-fresh", "accumulate"}
    assert table["value"].notna().all()
    g = table[(table.experiment == "gauss") & (table.metric == "var_ratio_mean") & (table.generation == 0)]
    assert (g["value"] == 1.0).all()
    # the two seeds are different chains
    s = table[(table.metric == "std_mean") & (table.generation == 6) & (table.regime == "replace")]
    assert s["value"].nunique() == 2


def test_every_generation_of_a_one_per_job_target_has_its_files(tiny):
    chain = tiny / "results/tiny/gmm/accumulate/seed1"
    for g in range(3):
        gdir = chain / f"gen{g}" if g else tiny / "results/tiny/gmm/seed1/gen0"  # generation 0 is shared
        for name in ("model/state.npz", "model/target.json", "samples/samples.npz", "metrics.csv", "trainset.json"):
            assert (gdir / name).is_file(), name
    assert not (chain / "gen0").exists()
    logs = tiny / "results/tiny/logs/gmm/accumulate/seed1/gen2"
    jobs = ("train", "generate", "evaluate")
    assert {p.name for p in logs.iterdir()} == ({f"{j}.log" for j in jobs} | {f"{j}.benchmark.tsv" for j in jobs}
                                                | {f"{j}.usage.json" for j in jobs})
    assert "fitted on 180 items" in (logs / "train.log").read_text()


def test_plots_and_report(tiny):
    plots = tiny / "results/tiny/plots"
    assert {p.stem for p in plots.glob("gaussian/*.png")} >= {"std_mean", "var_ratio_mean", "kl_truth_model"}
    assert {p.stem for p in plots.glob("gmm/*.png")} >= {"kl_truth_model", "tail_mass_ratio"}
    assert all(p.stat().st_size > 5000 for p in plots.glob("*/*.png"))
    run_snakemake(tiny, TINY, "--report", "report.html")
    html = (tiny / "report.html").read_text()
    assert "var_ratio_mean" in html and "Wasserstein" in html
    # browsable: metric plots under a subcategory per target, the tables in their own category
    assert "Metrics by generation" in html and "Tables" in html and "summary.csv" in html
    assert '"gaussian"' in html and '"gmm"' in html


def test_same_numbers_with_one_core(tiny, tmp_path):
    run_snakemake(tmp_path, TINY, "--cores", "1", "results/tiny/metrics.csv")
    a = pd.read_csv(tiny / "results/tiny/metrics.csv")
    b = pd.read_csv(tmp_path / "results/tiny/metrics.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def _outputs(root):
    """Every computed file but the logs and the study tables (rewritten when chains grow, with their last/ copy)."""
    tables = {root / "results" / "grow" / d / f for f in ("metrics.csv", "settings.csv", "summary.csv")
              for d in ("", "last")}
    return {p: p.stat().st_mtime_ns for p in (root / "results").rglob("*")
            if p.is_file() and "logs" not in p.parts and p not in tables}


def test_more_generations_run_only_the_new_ones(tmp_path):
    cfg = {"study": "grow", "seeds": [0], "generations": 4, "tracking": {"enabled": False},
           "experiments": [{"name": "gauss", "target": "gaussian", "n": 20, "replicates": 20, "block": 3,
                            "regimes": ["accumulate-subsample"]},
                           {"name": "gmm", "target": "gmm", "n": 40, "block": 1, "regimes": ["replace"], "params": GMM,
                            "generations": 1}]}
    run_snakemake(tmp_path, cfg, "--cores", "2", "results/grow/metrics.csv")
    before = _outputs(tmp_path)
    first = pd.read_csv(tmp_path / "results/grow/metrics.csv")
    cfg["generations"] = 8
    cfg["experiments"][1]["generations"] = 2
    proc = run_snakemake(tmp_path, cfg, "--cores", "2", "results/grow/metrics.csv")
    after = _outputs(tmp_path)
    assert all(after[p] == t for p, t in before.items()), "an earlier output was recomputed"
    new = sorted(str(p.relative_to(tmp_path)) for p in set(after) - set(before))
    assert any("gens5-7" in p for p in new) and any("gens8-8" in p for p in new)
    assert any("gmm/replace/seed0/gen2/" in p for p in new)
    assert not any("gen1/" in p or "gens0-2" in p or "gens3-4" in p for p in new)
    stats = snakemake_log(tmp_path)
    assert "real_data" not in stats.split("Job stats")[1].split("Select jobs")[0]
    second = pd.read_csv(tmp_path / "results/grow/metrics.csv")
    key = ["experiment", "regime", "seed", "generation", "metric"]
    merged = first.merge(second, on=key, suffixes=("_a", "_b"))
    assert len(merged) == len(first)
    assert (merged["value_a"] == merged["value_b"]).all()
    assert second.groupby("experiment")["generation"].max().to_dict() == {"gauss": 8, "gmm": 2}


def test_a_changed_parameter_recomputes_what_depends_on_it(tmp_path):
    cfg = {"study": "change", "seeds": [0], "generations": 2, "tracking": {"enabled": False},
           "experiments": [{"name": "a", "target": "gaussian", "n": 20, "replicates": 10, "regimes": ["replace"]},
                           {"name": "b", "target": "gaussian", "n": 20, "replicates": 10, "regimes": ["replace"]}]}
    run_snakemake(tmp_path, cfg, "--cores", "2", "results/change/metrics.csv")
    cfg["experiments"][1]["lam"] = 0.5
    proc = run_snakemake(tmp_path, cfg, "-n", "--cores", "1", "results/change/metrics.csv")
    out = proc.stdout + proc.stderr
    assert "output: results/change/b/replace/seed0/gens0-2" in out
    assert "output: results/change/a/replace/seed0/gens0-2" not in out
    assert "rule real_data" not in out  # lam does not change the real data


def test_a_curated_study_end_to_end(tmp_path):
    """Curation in both execution shapes; generation 0 shared, drawing for the neediest regime."""
    cfg = {"study": "cur", "seeds": [0], "generations": 2, "tracking": {"enabled": False},
           "experiments": [
               {"name": "gmm", "target": "gmm", "n": 40, "replicates": 2, "block": 1, "params": GMM,
                "regimes": ["replace", {"kind": "mix", "rho": 0.5}],
                "curation": {"selector": "top", "q": 0.5, "scorer": "truth"}},
               {"name": "gauss", "target": "gaussian", "n": 20, "replicates": 10, "regimes": ["accumulate"],
                "curation": {"selector": "random", "oversample": 2}, "sweep": {"oversample": [2, 3]}}]}
    run_snakemake(tmp_path, cfg, "--cores", "2")
    res = tmp_path / "results/cur"
    drawn = np.load(res / "gmm/seed0/gen0/samples/samples.npz")["points"]
    assert drawn.shape == (2, 80, 2)  # replace keeps 40 of 80 candidates; mix keeps 20 of the first 40
    for regime, kept in (("replace", 40), ("mix-rho0.5", 20)):
        curated = np.load(res / f"gmm/{regime}/seed0/gen0/curated/samples.npz")["points"]
        assert curated.shape == (2, kept, 2)
        assert set(map(tuple, curated[0])) <= set(map(tuple, drawn[0, : 2 * kept]))
    table = read_study(res / "metrics.csv")
    kept = table[table.metric == "curation_kept_fraction"]
    assert set(kept.experiment) == {"gmm", "gauss_oversample2", "gauss_oversample3"}
    assert len(kept[kept.experiment == "gmm"]) == 2 * 3
    assert np.allclose(kept[kept.experiment == "gmm"].value, 0.5)
    assert np.allclose(kept[kept.experiment == "gauss_oversample3"].value, 1 / 3)
    assert {"curation.selector", "curation.q"} <= set(table.columns)
    for target in ("gmm", "gaussian"):  # each target's curation plots in its own folder (report category)
        assert (res / f"plots/{target}/curation_kept_fraction.png").stat().st_size > 5000
    assert (res / "plots/gmm/curation_score_kept.png").is_file()  # a scorer: score metrics
    assert not (res / "plots/gaussian/curation_score_kept.png").exists()  # the random control scores nothing
