"""The linear-regression target (Gerstgrasser et al. 2024; Dohmatob, Feng, Kempe 2024): fits, designs, pools
and the closed forms of E||w_hat_t - w*||^2 under replace and accumulate."""
import numpy as np
import pytest

from conftest import make_chain
from ouroboros import data as D
from ouroboros.chain import ChainRun, run_block, unstack_models
from ouroboros.regimes import make_regime
from ouroboros.seeding import generator
from ouroboros.targets import make_target


def _run(chain):
    t = chain.experiment.make_target()
    return ChainRun(chain, t.real_data(chain.job.real_rng(), chain.job.n, chain.experiment.replicates), {})


def _errors(chain, G):
    """||w_hat_t - w*||^2 per generation and replicate, (G + 1, R)."""
    run = _run(chain)
    out = []
    for t in range(G + 1):
        model, _, _ = run.step(t)
        out.append(np.sum((model.w_ - model.w_star) ** 2, axis=1))
    return np.array(out), run


@pytest.mark.parametrize("regime,design,lam", [("replace", "fixed", 1.0), ("replace", "fresh", 0.5),
                                               ("accumulate", "fixed", 1.0), ("accumulate", "fixed", 0.5)])
def test_error_follows_the_closed_form(regime, design, lam):
    """replace: c (1 + lam t), linear growth; accumulate (fixed design): c sum_j lam_j / (j + 1)^2, bounded by
    c pi^2 / 6; c = sigma^2 d / (T - d - 1).  Within 4 standard errors at every generation."""
    T, d, R, G = 40, 5, 4000, 12
    chain = make_chain("linreg", {"d": d, "noise_var": 2.0, "design": design}, regime=regime, n=T, replicates=R,
                       lam=lam)
    err, _ = _errors(chain, G)
    theory = chain.job.target().closed_form("w_error_mean", np.arange(G + 1), chain.regime, T, lam)
    c = 2.0 * d / (T - d - 1)
    assert theory[0] == pytest.approx(c)
    if regime == "replace":
        assert theory[G] == pytest.approx(c * (1 + lam * G))
    else:
        assert theory[G] < c * (1 + lam * np.pi ** 2 / 6)
    se = err.std(axis=1) / np.sqrt(R)
    assert np.all(np.abs(err.mean(axis=1) - theory) < 4 * se), (err.mean(axis=1), theory)


def test_no_closed_form_where_theory_gives_none():
    t = make_target("linreg", {"d": 5, "ridge": 0.1})
    assert t.closed_form("w_error_mean", np.arange(3), make_regime("replace"), 40, 1.0) is None
    t = make_target("linreg", {"d": 5, "design": "fresh"})
    assert t.closed_form("w_error_mean", np.arange(3), make_regime("accumulate"), 40, 1.0) is None
    assert t.closed_form("test_mse", np.arange(3), make_regime("replace"), 40, 1.0) is None


def test_fit_is_least_squares_or_ridge_and_samples_relabel_the_fixed_design():
    rng = generator("linreg-fit")
    t = make_target("linreg", {"d": 3, "ridge": 0.5})
    real = t.real_data(rng, 20, 4)
    x, y = real["train"][..., :3], real["train"][..., 3]
    t.fit(real["train"])
    for r in range(4):
        np.testing.assert_allclose(t.w_[r], np.linalg.solve(x[r].T @ x[r] + 0.5 * np.eye(3), x[r].T @ y[r]))
    s = t.sample(20, 1.0, rng)
    np.testing.assert_array_equal(s[..., :3], x)  # the fixed design: the same inputs, new labels
    assert not np.allclose(s[..., 3], y)
    fresh = make_target("linreg", {"d": 3, "design": "fresh"}).fit(real["train"]).sample(20, 1.0, rng)
    assert not np.allclose(fresh[..., :3], x)
    # a longer fixed design starts with the shorter one; the noise-free test labels are x . w*
    np.testing.assert_array_equal(t.fixed_design(4, 30)[:, :20], x)
    np.testing.assert_allclose(real["test"][..., 3], real["test"][..., :3] @ t.w_star)
    # sampling bias: lam scales the label noise variance
    t0 = make_target("linreg", {"d": 3}).fit(real["train"])
    resid = t0.sample(20000, 0.25, rng)
    noise = resid[..., 3] - np.einsum("rnd,rd->rn", resid[..., :3], t0.w_)
    assert abs(noise.var() - 0.25) < 0.01


def test_accumulate_pools_gram_statistics_equal_to_the_rows():
    chain = make_chain("linreg", {"d": 4}, regime="accumulate", n=15, replicates=6)
    run = _run(chain)
    rows = [run.real["train"]]
    for t in range(4):
        model, synthetic, _ = run.step(t)
        assert isinstance(synthetic, D.Gram)  # nothing reads the rows: the chain keeps their statistics
        # the rows themselves, drawn again from the same stream
        drawn = model.sample_parts(chain.job.emit_parts(t), run.lam, chain.job.rng(t, "sample"))
        np.testing.assert_allclose(D.Gram.from_points(drawn).xx, synthetic.xx, rtol=1e-12)
        rows.append(drawn)
    assert isinstance(run.pool.data(), D.Gram)
    allrows = np.concatenate(rows[:-1], axis=1)  # generation 3 fitted real + S_0..S_2
    x, y = allrows[..., :4], allrows[..., 4]
    for r in range(6):
        np.testing.assert_allclose(model.w_[r], np.linalg.lstsq(x[r], y[r], rcond=None)[0], rtol=1e-9)


@pytest.mark.parametrize("regime", ["accumulate", "accumulate-subsample", "mix"])
def test_blocks_and_resume_give_the_same_numbers(regime):
    chain = make_chain("linreg", {"d": 3, "design": "fresh"}, regime=regime, n=12, replicates=10, rho=0.5)
    whole = run_block(_run(chain), 0, 6)
    first = run_block(_run(chain), 0, 2)
    resumed = _run(chain)
    resumed.resume(2, first.state, unstack_models(first.stacked_models(), resumed.template))
    assert first.metrics + run_block(resumed, 3, 6).metrics == whole.metrics


def test_too_few_rows_for_least_squares_is_refused():
    t = make_target("linreg", {"d": 10})
    assert "cannot fit d=10" in t.check(make_regime("replace"), 8, 2)
    assert t.check(make_regime("replace"), 12, 2) is None
    assert make_target("linreg", {"d": 10, "ridge": 1.0}).check(make_regime("replace"), 8, 2) is None


@pytest.mark.parametrize("n,share,regime", [(400, 0.5, "replace"), (400, 0.1, "replace"), (800, 0.2, "accumulate")])
def test_strong_model_collapse_matches_the_isotropic_law(n, share, regime):
    """A share p of the real rows labelled by w* + Delta: generation 0's error is sigma^2 d / (n - d - 1) plus
    ||Delta||^2 [p^2 + p (1 - p) phi / (1 - phi)] (Dohmatob et al. 2025), and later generations add only their
    own noise; within 4 standard errors (3,000 replicates, n >= 40 d where the deterministic equivalent's own
    error is below them).  Dropping the p (1 - p) term, or the floor p^2, is many standard errors off."""
    from conftest import run_chain

    d, R, G = 10, 3000, 3
    chain = make_chain("linreg", {"d": d, "synthetic_share": share, "shift": 1.0, "design": "fresh"
                                  if regime == "replace" else "fixed"}, regime=regime, n=n, replicates=R)
    target = chain.job.target()
    assert target.shifted_rows(n) == round(share * n)
    _, run = run_chain(chain, 0)
    errors = [np.sum((run.model.w_ - target.w_star) ** 2, axis=1)]
    for t in range(1, G + 1):
        model, _, _ = run.step(t)
        errors.append(np.sum((model.w_ - target.w_star) ** 2, axis=1))
    errors = np.array(errors)
    theory = target.closed_form("w_error_mean", np.arange(G + 1), chain.regime, n, 1.0)
    se = errors.std(axis=1) / np.sqrt(R)
    assert np.all(np.abs(errors.mean(axis=1) - theory) < 4 * se), (errors.mean(axis=1), theory, se)
    p, phi, c = share, d / n, d / (n - d - 1)
    for wrong in (c + p * p, c + p * (1 - p) * phi / (1 - phi), c + p):
        assert abs(errors[0].mean() - wrong) > 6 * se[0]
    real = target.real_data(np.random.default_rng(1), n, 2)["train"]
    k = target.shifted_rows(n)
    resid = real[..., -1] - real[..., :-1] @ target.w_star
    shifted = real[:, :k, :-1] @ target.delta
    np.testing.assert_allclose(np.corrcoef(resid[:, :k].ravel(), shifted.ravel())[0, 1], 1 / np.sqrt(2), atol=0.15)
