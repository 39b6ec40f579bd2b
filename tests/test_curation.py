"""Curation: config checks, each selector and scorer, masks for uneven training sets, the closed forms
(truncation selection; Bradley-Terry choice -> exponential tilt), and one generation per job = blocks."""
import copy

import numpy as np
import pytest
from scipy.stats import norm

from conftest import make_chain, run_per_job
from ouroboros import data as D
from ouroboros import io
from ouroboros.chain import ChainRun, run_block
from ouroboros.config import Study
from ouroboros.curation import Context, Curation, selector_class
from ouroboros.seeding import generator
from ouroboros.settings import ConfigError
from ouroboros.targets import make_target

BASE = {"study": "c", "seeds": [0], "generations": 2,
        "experiments": [{"target": "gaussian", "n": 20, "replicates": 4, "regimes": ["replace"]}]}
GMM = {"components": 2, "truth": "blob", "eval_size": 200, "test_size": 50}


def _cfg(curation, **exp):
    cfg = copy.deepcopy(BASE)
    cfg["experiments"][0].update(exp, curation=curation)
    return cfg


def _run(chain):
    t = chain.experiment.make_target()
    return ChainRun(chain, t.real_data(chain.job.real_rng(), chain.job.n, chain.experiment.replicates),
                    t.reference(generator(chain.study, chain.experiment.label, "reference")))


# -- configuration ------------------------------------------------------------------------------
BAD = [
    ({"selector": "best"}, ["curation.selector", "allowed values: none" if False else "allowed values: top, threshold"]),
    ({"selector": "top", "scorer": "oracle"}, ["curation.scorer", "allowed values: none, truth, noisy"]),
    ({"selector": "top", "q": 0, "scorer": "truth"}, ["curation.q", "less than or equal to the minimum of 0"]),
    ({"selector": "top", "q": 1.5, "scorer": "truth"}, ["curation.q", "maximum of 1"]),
    ({"selector": "choice", "K": 1, "scorer": "truth"}, ["curation.K", "minimum of 2"]),
    ({"selector": "dedup", "tolerance": -0.1}, ["curation.tolerance", "minimum of 0"]),
    ({"selector": "random", "oversample": 0.5}, ["curation.oversample", "minimum of 1"]),
    ({"selector": "top", "q": 0.5}, ["curation", "needs a scorer", "truth, noisy, gen0"]),
    ({"selector": "top", "scorer": "judge"}, ["cannot provide the scorer 'judge'", "gen0, noisy, ratio, reward, self, truth"]),
    ({"selector": "top", "scorer": "truth", "K": 3}, ["curation", "unknown key 'K'", "allowed keys: q, scorer, selector"]),
    ({"selector": "top", "scorer": "reward", "reward": {"kind": "linear", "w": [1, 2]}}, ["reward.w has 2 entries", "have 1"]),
    ({"selector": "top", "scorer": "noisy", "noise": float("nan")}, ["curation.noise", "not a finite number"]),
]


@pytest.mark.parametrize("curation,words", BAD, ids=lambda x: str(x)[:40])
def test_bad_curation_is_rejected_naming_the_key_and_the_allowed_values(curation, words):
    with pytest.raises(ConfigError) as err:
        Study.from_config(_cfg(curation))
    msg = str(err.value)
    assert msg.startswith("invalid config at experiments[0]"), msg
    for w in words:
        assert w in msg, msg


def test_metrics_reported_are_the_ones_plotted():
    assert Curation({"selector": "dedup"}).metric_names() == ["curation_kept_fraction"]
    assert Curation({"selector": "top", "scorer": "truth"}).metric_names() == [
        "curation_kept_fraction", "curation_score_kept", "curation_score_all"]


def test_curation_needs_points_so_auto_samples_them_and_sufficient_is_refused():
    study = Study.from_config(_cfg({"selector": "top", "q": 0.5, "scorer": "truth"}))
    assert study.chains[0].job.target().method == "sample"
    with pytest.raises(ConfigError, match="'sufficient' cannot run this curation step"):
        Study.from_config(_cfg({"selector": "top", "q": 0.5, "scorer": "truth"}, params={"method": "sufficient"}))


def test_curation_is_sweepable_and_swept_experiments_share_their_streams():
    cfg = _cfg({"selector": "top", "scorer": "noisy"}, sweep={"q": [0.25, 0.5], "noise": [0.0, 1.0], "n": [20, 40]})
    study = Study.from_config(cfg)
    exps = {e.label: e for e in study.experiments}
    assert len(exps) == 8
    a, b = exps["gaussian_q0.25_noise0_n20"], exps["gaussian_q0.5_noise1_n20"]
    assert a.curation["q"] == 0.25 and b.curation["noise"] == 1.0
    assert a.stream == b.stream == "gaussian_n20" != exps["gaussian_q0.5_noise1_n40"].stream
    ca, cb = study.chain(a.label, "replace", 0), study.chain(b.label, "replace", 0)
    assert np.array_equal(ca.job.real_rng().random(3), cb.job.real_rng().random(3))
    assert ca.job.n_candidates == 80 and cb.job.n_candidates == 40
    assert ca.columns()["curation.q"] == 0.25


# -- selectors and scorers ------------------------------------------------------------------------
def _ctx(rng=None, target=None):
    return Context(model=None, gen0=None, target=target or make_target("gaussian"), reference={},
                   rng=rng or generator("ctx"))


def test_top_keeps_the_best_fraction_and_reports_scores():
    cur = Curation({"selector": "top", "q": 0.25, "scorer": "reward", "reward": {"kind": "linear", "w": [1.0]}})
    assert cur.n_candidates(10) == 40
    x = generator("top").standard_normal((3, 40, 1))
    kept, m = cur.apply(x, 10, _ctx())
    for r in range(3):
        np.testing.assert_array_equal(np.sort(kept[r, :, 0]), np.sort(x[r, :, 0])[-10:])
    assert m["curation_kept_fraction"] == 0.25
    assert m["curation_score_kept"] > m["curation_score_all"]
    np.testing.assert_allclose(m["curation_score_all"], x.mean())


def test_threshold_tops_up_or_reports_a_shortfall_with_a_mask():
    x = np.array([[[3.0], [-1.0], [2.0], [-2.0], [0.5], [-3.0]], [[-1.0], [-2.0], [-3.0], [-4.0], [-5.0], [-6.0]]])
    common = {"selector": "threshold", "threshold": 0.0, "scorer": "reward", "oversample": 2}
    kept, m = Curation(dict(common, fill="report")).apply(x, 3, _ctx())
    assert isinstance(kept, D.Masked)
    assert D.counts(kept).tolist() == [3, 0]
    np.testing.assert_array_equal(D.items(kept, 0)[:, 0], [3.0, 2.0, 0.5])
    assert m["curation_kept_fraction"] == pytest.approx(0.25)
    full, m2 = Curation(dict(common, fill="top_up")).apply(x, 3, _ctx())
    assert not isinstance(full, D.Masked) and full.shape == (2, 3, 1)
    np.testing.assert_array_equal(full[1, :, 0], [-1.0, -2.0, -3.0])
    assert m2["curation_kept_fraction"] == 0.5


@pytest.mark.parametrize("K,gamma", [(2, 1.0), (3, 0.5)])
def test_choice_picks_with_softmax_probabilities(K, gamma):
    sel = selector_class("choice")(K=K, gamma=gamma)
    m = 20000
    scores = np.tile(np.arange(K, dtype=float), (1, m))  # every group scores 0, 1, ..., K-1
    idx, valid = sel.select(None, scores, m, generator("choice", K), None)
    assert valid.all() and np.all(idx // K == np.arange(m))
    share = np.bincount((idx % K).ravel(), minlength=K) / m
    p = np.exp(gamma * np.arange(K)) / np.exp(gamma * np.arange(K)).sum()
    assert np.all(np.abs(share - p) < 4 * np.sqrt(p * (1 - p) / m)), (share, p)


def test_random_control_keeps_a_uniform_subset_of_the_same_candidates():
    cur = Curation({"selector": "random", "oversample": 4})
    x = np.tile(np.arange(40.0)[None, :, None], (500, 1, 1))
    kept, m = cur.apply(x, 10, _ctx())
    assert kept.shape == (500, 10, 1) and m == {"curation_kept_fraction": 0.25}
    assert all(len(set(kept[r, :, 0])) == 10 for r in range(500))
    counts = np.bincount(kept[..., 0].astype(int).ravel(), minlength=40)
    assert counts.min() > 0.7 * 125 and counts.max() < 1.3 * 125  # each candidate kept with probability 1/4


def test_dedup_exact_and_within_a_tolerance():
    x = np.array([[[0.0], [1.0], [0.0], [1.05], [2.0], [1.0]]])
    exact, _ = Curation({"selector": "dedup"}).apply(x, 6, _ctx())
    np.testing.assert_array_equal(exact[0, :, 0], [0.0, 1.0, 1.05, 2.0])  # one replicate: dropped, no mask
    near, m = Curation({"selector": "dedup", "tolerance": 0.1}).apply(x, 6, _ctx())
    np.testing.assert_array_equal(near[0, :, 0], [0.0, 1.0, 2.0])
    assert m["curation_kept_fraction"] == 0.5
    chained = D.near_duplicates(np.array([[[0.0], [0.08], [0.16]]]), 0.1)  # 0.16 is near 0.08, a duplicate
    assert chained.tolist() == [[False, True, False]]


def test_uneven_training_sets_are_masked_never_padded_and_fits_use_only_kept_items():
    rng = generator("mask")
    pts = rng.standard_normal((2, 6, 1))
    masked = D.Masked(pts, np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool))
    s = D.Stats.from_points(masked)
    np.testing.assert_allclose(s.count, [4, 6])
    np.testing.assert_allclose(s.mean[0], pts[0, :4].mean(0))
    np.testing.assert_allclose(s.m2[0, 0, 0], ((pts[0, :4, 0] - pts[0, :4, 0].mean()) ** 2).sum())
    g = make_target("gaussian").fit(masked)
    np.testing.assert_allclose(g.cov_[0, 0, 0], pts[0, :4, 0].var())
    joined = D.concat([masked, pts])
    assert isinstance(joined, D.Masked) and D.counts(joined).tolist() == [10, 12]
    sub = D.subsample(masked, 5, rng)
    assert D.counts(sub).tolist() == [4, 5]
    assert set(D.items(sub, 0)[:, 0]) == set(pts[0, :4, 0])
    back = D.from_arrays(D.to_arrays(masked))
    np.testing.assert_array_equal(back.mask, masked.mask)


def test_dedup_on_a_gmm_chain_trains_on_fewer_points_per_replicate():
    chain = make_chain("gmm", GMM, regime="replace", n=60, replicates=3,
                       curation={"selector": "dedup", "tolerance": 0.3})
    run = _run(chain)
    _, synthetic, metrics = run.step(0)
    counts = D.counts(synthetic)
    assert 0 < metrics["curation_kept_fraction"] < 1 and counts.max() <= 60 and counts.min() < 60
    model = run.fit(1, run.trainset(1))
    assert model.means_.shape == (3, 2, 2)


def test_scorers_call_their_target_hooks():
    g = make_target("gaussian", {"d": 2}).fit(generator("fit").standard_normal((2, 50, 2)))
    x = generator("x").standard_normal((2, 7, 2))
    ctx = Context(model=g, gen0=g, target=g, reference={}, rng=generator("s"))
    from scipy.stats import multivariate_normal

    expected = np.array([multivariate_normal(g.mean_[r], g.cov_[r]).logpdf(x[r]) for r in range(2)])
    for kind, want in (("self", expected), ("gen0", expected),
                       ("truth", multivariate_normal(np.zeros(2), np.eye(2)).logpdf(x))):
        cur = Curation({"selector": "top", "q": 1.0, "scorer": kind})
        np.testing.assert_allclose(cur.scorer.score(x, ctx), want, rtol=1e-10)
    ratio = Curation({"selector": "top", "scorer": "ratio"}).scorer.score(x, ctx)
    np.testing.assert_allclose(ratio, multivariate_normal(np.zeros(2), np.eye(2)).logpdf(x) - expected, rtol=1e-10)
    noisy = Curation({"selector": "top", "scorer": "noisy", "noise": 2.0}).scorer.score(x, ctx)
    assert 0.5 < np.std(noisy - multivariate_normal(np.zeros(2), np.eye(2)).logpdf(x)) < 4
    dist = Curation({"selector": "top", "scorer": "reward", "reward": {"kind": "distance", "point": [1.0, 0.0]}})
    np.testing.assert_allclose(dist.scorer.score(x, ctx), -np.linalg.norm(x - [1.0, 0.0], axis=-1))


def test_minhash_finds_near_duplicate_text():
    from ouroboros import text as T

    base = "the quick brown fox jumps over the lazy dog near the river bank at dawn"
    texts = [base, base.replace("dawn", "dusk"), "an entirely different sentence about compilers and parsers",
             base, "another unrelated line of text on the topic of gardening in spring"]
    assert T.minhash_duplicates(texts, similarity=0.7).tolist() == [False, True, False, True, False]
    assert T.minhash_duplicates(texts, similarity=0.99).tolist() == [False, False, False, True, False]


# -- closed forms -------------------------------------------------------------------------------
@pytest.mark.parametrize("q,lam", [(0.5, 1.0), (0.2, 0.8)])
def test_truncation_selection_of_a_normal_matches_the_closed_form(q, lam):
    """Top-q selection on r(x) = x: the kept items' mean moves by i s and their variance is s^2 (1 + z i - i^2)."""
    n, R = 1000, 1000
    cur = {"selector": "top", "q": q, "scorer": "reward", "reward": {"kind": "linear", "w": [1.0]}}
    chain = make_chain("gaussian", {"method": "sample"}, n=n, replicates=R, lam=lam, curation=cur)
    run = _run(chain)
    m0, _, _ = run.step(0)
    m1, _, _ = run.step(1)
    z = norm.ppf(1 - q)
    i = norm.pdf(z) / q
    s0 = np.sqrt(lam * m0.cov_[:, 0, 0])
    shift = (m1.mean_[:, 0] - m0.mean_[:, 0]) / s0
    factor = m1.cov_[:, 0, 0] / s0 ** 2
    assert abs(shift.mean() - i) < 4 * shift.std() / np.sqrt(R), (shift.mean(), i)
    want = (1 + z * i - i * i) * (n - 1) / n
    assert abs(factor.mean() - want) < 4 * factor.std() / np.sqrt(R), (factor.mean(), want)
    # the plotted closed form over generations (var_ratio under replace)
    target = chain.job.target()
    metrics = [run.step(t)[2] for t in range(2, 5)]
    spec = chain.experiment.curation
    theory = target.closed_form("var_ratio_mean", np.arange(2, 5), chain.regime, n, lam, spec)
    got = np.array([m["var_ratio_mean"] for m in metrics])
    assert np.all(np.abs(got / theory - 1) < 0.02), (got, theory)


def test_bradley_terry_choice_with_a_linear_reward_tilts_the_normal():
    """Each kept item chosen among K with probability ~ exp(gamma x): as K -> oo the kept items follow the
    exponential tilt, N(mu + gamma lam s^2, lam s^2) for samples N(mu, lam s^2)."""
    n, R, K, gamma, lam = 100, 200, 512, 0.5, 0.9
    cur = {"selector": "choice", "K": K, "gamma": gamma, "scorer": "reward", "reward": {"kind": "linear", "w": [1.0]}}
    chain = make_chain("gaussian", {"method": "sample"}, n=n, replicates=R, lam=lam, curation=cur)
    run = _run(chain)
    metrics = [run.step(0)[2]]
    m0 = run.gen0
    m1, _, m = run.step(1)
    metrics.append(m)
    v0 = lam * m0.cov_[:, 0, 0]
    shift = (m1.mean_[:, 0] - m0.mean_[:, 0]) / v0
    factor = m1.cov_[:, 0, 0] / v0
    assert abs(shift.mean() - gamma) < 4 * shift.std() / np.sqrt(R), shift.mean()
    assert abs(factor.mean() - (n - 1) / n) < 4 * factor.std() / np.sqrt(R), factor.mean()
    metrics += [run.step(t)[2] for t in (2, 3)]
    drift = np.array([mm["mean_drift"] for mm in metrics])
    theory = chain.job.target().closed_form("mean_drift", np.arange(4), chain.regime, n, lam, chain.experiment.curation)
    np.testing.assert_allclose(drift[1:], theory[1:], rtol=0.05)


# -- one generation per job equals blocks, with curation ------------------------------------------
@pytest.mark.parametrize("target,params,regime,curation,replicates", [
    ("gaussian", {"method": "sample"}, "mix", {"selector": "top", "q": 0.5, "scorer": "self"}, 3),
    ("gaussian", {"method": "sample", "d": 2}, "accumulate", {"selector": "dedup", "tolerance": 0.2}, 3),
    ("gaussian", {"method": "sample"}, "replace", {"selector": "dedup", "tolerance": 0.05}, 1),
    ("gmm", GMM, "replace", {"selector": "choice", "K": 3, "scorer": "noisy", "noise": 0.5}, 3),
    ("gmm", GMM, "accumulate-subsample", {"selector": "threshold", "threshold": -3.0, "fill": "report",
                                          "scorer": "gen0", "oversample": 1.5}, 3),
])
def test_curated_chains_give_the_same_numbers_per_job_and_in_blocks(tmp_path, target, params, regime, curation,
                                                                    replicates):
    """Also where a replicate keeps fewer items than the regime asks for (dedup, threshold report)."""
    chain = make_chain(target, params, regime=regime, rho=0.3, n=14, replicates=replicates, curation=curation)
    rows, block_rows = run_per_job(chain, tmp_path, 3)
    assert sorted((g, m) for g, m, _ in rows) == sorted((g, m) for g, m, _ in block_rows)
    assert {m for _, m, _ in rows} >= {"curation_kept_fraction"}
    a, b = dict(((g, m), v) for g, m, v in rows), dict(((g, m), v) for g, m, v in block_rows)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-12, atol=1e-15, err_msg=str(key))
    # resuming a block mid-chain re-draws and re-curates the same synthetic data
    first = run_block(_run(chain), 0, 1)
    resumed = _run(chain)
    from ouroboros.chain import unstack_models

    resumed.resume(1, first.state, unstack_models(first.stacked_models(), resumed.template))
    second = run_block(resumed, 2, 3)
    assert first.metrics + second.metrics == run_block(_run(chain), 0, 3).metrics
    manifest = io.load_json(tmp_path / "gen3" / "trainset.json")
    assert manifest["items_min"] <= manifest["items_per_replicate"] <= 14 * 4
    if replicates == 1:  # one replicate: duplicates are dropped, the training set is smaller
        assert manifest["items_per_replicate"] < 14 and manifest["form"] == "points"


def test_importance_resampling_towards_the_truth_prevents_collapse():
    """choice with gamma = 1 on the ratio scorer (truth over model) resamples towards the truth every
    generation, so the refit settles near N(0, 1) (a little narrower: finite K, lam < 1 and the MLE's
    (n - 1) / n) where the uncurated loop loses its variance."""
    common = dict(n=20, replicates=400, lam=0.9)
    cur = {"selector": "choice", "K": 64, "gamma": 1.0, "scorer": "ratio"}
    curated, _ = _metrics(make_chain("gaussian", {"method": "sample"}, curation=cur, **common), 15)
    plain, _ = _metrics(make_chain("gaussian", {"method": "sample"}, **common), 15)
    assert plain[-1]["std_mean"] < 0.3  # (0.9 * 19 / 20) ** 7.5 = 0.25
    assert 0.85 < curated[-1]["std_mean"] < 1.0 and abs(curated[-1]["std_mean"] - curated[5]["std_mean"]) < 0.03
    assert curated[-1]["w2_to_truth"] < 0.3 < plain[-1]["w2_to_truth"]


def _metrics(chain, generations):
    run = _run(chain)
    return [run.step(t)[2] for t in range(generations + 1)], run


@pytest.mark.e2e
def test_snakemake_rejects_a_bad_curation_before_any_job(tmp_path, snakemake_run):
    proc = snakemake_run(tmp_path, _cfg({"selector": "top", "q": 0.5, "scorer": "judge"}), "-n", "--cores", "1",
                         check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "experiments[0].curation (" in out and "): target gaussian cannot provide the scorer 'judge'" in out
    assert "Traceback" not in out and not (tmp_path / "results").exists()
