import numpy as np
import pytest
from scipy import stats

from conftest import make_chain, run_chain
from ouroboros.data import Stats
from ouroboros.regimes import make_regime as Regime
from ouroboros.seeding import generator
from ouroboros.targets.gaussian import GaussianTarget, psd_sqrt, wishart_identity


@pytest.mark.parametrize("ddof", [0, 1])
def test_fit_is_the_numpy_estimate(ddof):
    x = generator("fit").standard_normal((4, 30, 1)) * 3 + 2
    g = GaussianTarget(ddof=ddof).fit(x)
    np.testing.assert_allclose(g.mean_[:, 0], x[..., 0].mean(1))
    np.testing.assert_allclose(np.sqrt(g.cov_[:, 0, 0]), x[..., 0].std(1, ddof=ddof))


def test_fit_full_covariance():
    x = generator("fit3").standard_normal((2, 200, 3)) @ np.array([[1, 0, 0], [0.5, 2, 0], [0, 0, 0.1]])
    g = GaussianTarget(d=3).fit(x)
    for r in range(2):
        np.testing.assert_allclose(g.cov_[r], np.cov(x[r].T, bias=True), atol=1e-12)


@pytest.mark.parametrize("method", ["sample", "sufficient"])
@pytest.mark.parametrize("lam", [1.0, 0.25])
def test_sampling_bias_scales_the_variance(method, lam):
    g = GaussianTarget(d=2, method=method).set_state({"mean": np.zeros((4000, 2)), "cov": np.tile(np.diag([4.0, 1.0]), (4000, 1, 1))})
    s = g.sample(50, lam, generator("lam", method))
    s = s if isinstance(s, Stats) else Stats.from_points(s)
    var = s.m2 / 49  # unbiased per replicate
    np.testing.assert_allclose(var.mean(0), lam * np.diag([4.0, 1.0]), atol=0.03 * 4)
    np.testing.assert_allclose(s.mean.var(0), lam * np.array([4.0, 1.0]) / 50, rtol=0.1)


@pytest.mark.parametrize("dof,d", [(12, 3), (2, 4), (7, 1)])
def test_wishart_sampler_mean_and_rank(dof, d):
    w = wishart_identity(generator("w", dof, d), dof, 20000, d)
    np.testing.assert_allclose(w.mean(0), dof * np.eye(d), atol=0.15 * dof)
    if dof < d:
        assert np.all(np.linalg.matrix_rank(w[:10]) == dof)


def test_w2_matches_the_general_formula():
    from scipy.linalg import sqrtm

    rng = generator("w2")
    a = rng.standard_normal((3, 3))
    cov = a @ a.T + 0.1 * np.eye(3)
    mu = rng.standard_normal(3)
    g = GaussianTarget(d=3).set_state({"mean": mu[None], "cov": cov[None]})
    expected = np.sqrt(mu @ mu + np.trace(cov + np.eye(3) - 2 * np.real(sqrtm(cov))))
    np.testing.assert_allclose(g.w2_to_standard_normal()[0], expected, rtol=1e-10)
    np.testing.assert_allclose(psd_sqrt(cov[None])[0] @ psd_sqrt(cov[None])[0], cov, atol=1e-12)


@pytest.mark.parametrize("method", ["sample", "sufficient"])
def test_replace_matches_the_closed_form(method):
    """E[var_ratio_t] = ((n-1)/n)^t and E[std_t] = kappa^(t+1) under the fully synthetic loop."""
    n, gens, reps = 10, 25, 20000 if method == "sufficient" else 8000
    chain = make_chain(params={"method": method}, n=n, replicates=reps)
    metrics, run = run_chain(chain, gens)
    target = chain.job.target()
    t = np.arange(gens + 1)
    expected_ratio = target.closed_form("var_ratio_mean", t, chain.regime, n, 1.0)
    expected_std = target.closed_form("std_mean", t, chain.regime, n, 1.0)
    got_ratio = np.array([m["var_ratio_mean"] for m in metrics])
    got_std = np.array([m["std_mean"] for m in metrics])
    # Monte Carlo error: sd of the per-replicate values / sqrt(R), from the final models
    std_final = np.sqrt(run.model.variance())
    ratio_final = run.model.variance() / run.gen0.variance()
    assert abs(got_std[-1] - expected_std[-1]) < 4 * std_final.std() / np.sqrt(reps)
    assert abs(got_ratio[-1] - expected_ratio[-1]) < 4 * ratio_final.std() / np.sqrt(reps)
    for g in (1, 5, 12):
        assert abs(got_std[g] / expected_std[g] - 1) < 0.03
    assert expected_std[-1] < 0.4  # the test is not trivially near 1


def test_oreilly_expectation_is_about_047():
    g = GaussianTarget()
    assert abs(g.closed_form("std_mean", np.array([1000]), Regime("replace"), 1000, 1.0)[0] - 0.472) < 0.002


@pytest.mark.parametrize("regime", ["replace", "accumulate", "mix"])
def test_sample_and_sufficient_agree_in_distribution(regime):
    """Two-sample KS test on the final std over many replicates."""
    finals = {}
    for method in ("sample", "sufficient"):
        chain = make_chain(params={"method": method}, regime=regime, rho=0.2, n=20, replicates=3000)
        _, run = run_chain(chain, 15)
        finals[method] = np.sqrt(run.model.variance())
    result = stats.ks_2samp(finals["sample"], finals["sufficient"])
    assert result.pvalue > 0.01, result
    assert finals["sample"].std() > 0.05  # the chains did spread out


def test_methods_differ_from_a_wrong_distribution():
    """The KS comparison has power: a sampler with the wrong variance is rejected."""
    chain = make_chain(params={"method": "sample"}, n=20, replicates=3000)
    _, run = run_chain(chain, 15)
    biased = make_chain(params={"method": "sufficient"}, n=20, replicates=3000, lam=0.97)
    _, run_b = run_chain(biased, 15)
    assert stats.ks_2samp(np.sqrt(run.model.variance()), np.sqrt(run_b.model.variance())).pvalue < 1e-3


def test_accumulate_keeps_variance_bounded():
    metrics, _ = run_chain(make_chain(regime="accumulate", n=10, replicates=2000), 60)
    assert metrics[-1]["var_ratio_mean"] > 0.6
    replace, _ = run_chain(make_chain(regime="replace", n=10, replicates=2000), 60)
    assert replace[-1]["var_ratio_mean"] < 0.01 + ((9 / 10) ** 60) * 2


def test_collapsed_fraction_counts_tiny_stds():
    g = GaussianTarget().set_state({"mean": np.zeros((4, 1)), "cov": np.array([1e-8, 1e-2, 1.0, 1e-7]).reshape(4, 1, 1)})
    m = g.evaluate(None, None, None, g)
    assert m["collapsed_fraction"] == 0.5
    assert set(m) == set(GaussianTarget.metrics)


def test_sufficient_cannot_run_accumulate_subsample():
    assert "accumulate-subsample" in GaussianTarget(method="sufficient").check(Regime("accumulate-subsample"), 10, 1)
    assert GaussianTarget().for_regime(Regime("accumulate-subsample")).method == "sample"
    assert GaussianTarget().for_regime(Regime("replace")).method == "sufficient"


def test_replace_variance_ratio_in_ten_dimensions():
    chain = make_chain(params={"method": "sufficient", "d": 10}, n=100, replicates=4000)
    metrics, run = run_chain(chain, 50)
    ratio = run.model.variance() / run.gen0.variance()
    expected = chain.job.target().closed_form("var_ratio_mean", np.array([50]), chain.regime, 100, 1.0)[0]
    assert abs(metrics[-1]["var_ratio_mean"] - expected) < 4 * ratio.std() / np.sqrt(4000)
    assert chain.job.target().closed_form("std_mean", np.array([50]), chain.regime, 100, 1.0) is None


@pytest.mark.parametrize("spec,lam,method,d", [
    ({"kind": "mix", "n_real": 10, "n_synthetic": 40, "fresh": True}, 0.8, "sufficient", 2),  # MAD fresh loop
    ({"kind": "mix", "n_real": 10, "n_synthetic": 40, "fresh": True}, 1.0, "sample", 1),
    ({"kind": "mix", "n_real": 30, "n_synthetic": 60}, 0.7, "sample", 2),  # Bertrand: all real + synthetic
    ({"kind": "mix", "rho": 0.3, "fresh": True}, 0.9, "sufficient", 1),
    ({"kind": "replace"}, 1.0, "sufficient", 3),
    ({"kind": "window", "k": 1}, 0.8, "sample", 1),  # the real set plus S_{t-1}: Bertrand's loop as a window
    # golden-ratio weighting (He, Xu and Cheng 2026): the real part weighs w in a weighted refit
    ({"kind": "mix", "n_real": 30, "n_synthetic": 30, "fresh": True, "real_weight": 0.618}, 1.0, "sufficient", 1),
    ({"kind": "mix", "n_real": 10, "n_synthetic": 40, "fresh": True, "real_weight": 0.2}, 0.9, "sample", 2),
    ({"kind": "accumulate"}, 1.0, "sufficient", 2),  # Dey and Donoho's accumulation: pooled refit
    ({"kind": "accumulate"}, 0.8, "sample", 1),
])
def test_fresh_and_fixed_real_loops_match_the_moment_recursion(spec, lam, method, d):
    """E[sigma_t^2] and E||mu_t||^2 under the fresh-data loop and a fixed real set plus synthetic data follow
    the exact linear recursion of mix_moments, within 4 standard errors at every generation (20,000
    replicates); a loop that forgot the real items, reused them when fresh, or dropped the sampling bias
    would be off by many standard errors."""
    from ouroboros.config import Chain, Experiment

    reg = Regime(**spec)
    n, R, G = 30, 20000, 10
    exp = Experiment(label="moments", target="gaussian", params={"d": d, "method": method}, n=n, replicates=R,
                     lam=lam, generations=G, block=G + 1, regimes=(reg,))
    chain = Chain("test-moments", exp, reg, 0)
    _, run = run_chain(chain, 0)
    var, msq = [run.model.variance()], [np.sum(run.model.mean_ ** 2, axis=1)]
    for t in range(1, G + 1):
        model, _, _ = run.step(t)
        var.append(model.variance())
        msq.append(np.sum(model.mean_ ** 2, axis=1))
    target = chain.job.target()
    for name, values in (("var_mean", np.array(var)), ("mean_sq", np.array(msq))):
        theory = target.closed_form(name, np.arange(G + 1), reg, n, lam)
        se = values.std(axis=1) / np.sqrt(R)
        assert np.all(np.abs(values.mean(axis=1) - theory) < 4 * se), (name, values.mean(axis=1), theory)


def test_moment_recursion_reaches_the_stationary_point_and_refuses_other_regimes():
    from ouroboros.targets.gaussian import mix_moments

    m = mix_moments(Regime("mix", n_real=50, n_synthetic=50, fresh=True), 100, 1.0, 1, 0, 400)
    v, q = m["var_mean"][-1], m["mean_sq"][-1]  # a fixed point of the recursion
    rho, N = 0.5, 100
    assert v == pytest.approx(((N - 1) * (rho + (1 - rho) * v) + N * rho * (1 - rho) * q) / N, rel=1e-9)
    assert q == pytest.approx((1 - rho) ** 2 * q + (rho + (1 - rho) * v) / N, rel=1e-9)
    assert mix_moments(Regime("accumulate"), 100, 1.0, 1, 0, 5) is None
    assert mix_moments(Regime("mix", rho=0.1), 100, 1.0, 1, 0, 5) is None  # a random subset: no closed form
    assert mix_moments(Regime("window", k=2), 100, 1.0, 1, 0, 5) is None  # reads two generations
    w1, bertrand = (mix_moments(r, 100, 0.9, 2, 0, 20) for r in (Regime("window", k=1),
                                                                  Regime("mix", n_real=100, n_synthetic=100)))
    np.testing.assert_array_equal(w1["var_mean"], bertrand["var_mean"])


@pytest.mark.parametrize("regime,lam,method", [("replace", 1.0, "sufficient"), ("accumulate", 1.0, "sufficient"),
                                               ("accumulate", 0.8, "sample")])
def test_variance_risk_follows_its_exact_second_moment_recursion(regime, lam, method):
    """E[(sigma_t^2 - 1)^2] (d = 1) under replace and accumulate, within 4 standard errors at every generation
    (40,000 replicates): Dey and Donoho's risk of the variance.  Accumulating keeps its ratio to generation 0
    below pi^2/6."""
    from ouroboros.config import Chain, Experiment
    from ouroboros.targets.gaussian import variance_risk

    reg = Regime(kind=regime)
    n, R, G = 20, 40000, 8
    exp = Experiment(label="risk", target="gaussian", params={"d": 1, "method": method}, n=n, replicates=R,
                     lam=lam, generations=G, block=G + 1, regimes=(reg,))
    chain = Chain("test-risk", exp, reg, 0)
    _, run = run_chain(chain, 0)
    sq = [(run.model.variance() - 1) ** 2]
    for t in range(1, G + 1):
        model, _, _ = run.step(t, evaluate=False)
        sq.append((model.variance() - 1) ** 2)
    sq = np.array(sq)
    theory = chain.job.target().closed_form("var_sq_error", np.arange(G + 1), reg, n, lam)
    se = sq.std(axis=1) / np.sqrt(R)
    assert np.all(np.abs(sq.mean(axis=1) - theory) < 4 * se), (sq.mean(axis=1), theory)
    if regime == "accumulate" and lam == 1.0:
        long = variance_risk(n, 1.0, 0, 2000, True, False)
        assert long[-1] / long[0] < np.pi ** 2 / 6
    assert chain.job.target().closed_form("var_sq_error", np.arange(3), Regime(kind="mix", rho=0.5, fresh=True), n,
                                          lam) is None
