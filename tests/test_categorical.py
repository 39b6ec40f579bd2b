"""The categorical target (Wright-Fisher): refits, sampling, metrics and the closed forms."""
import numpy as np
import pytest

from conftest import make_chain
from ouroboros import data as D
from ouroboros.chain import ChainRun, run_block
from ouroboros.seeding import generator
from ouroboros.targets import make_target
from ouroboros.targets.categorical import (
    fixation_time_diffusion,
    fixation_time_two_categories,
    tail_categories,
    truth_probs,
)


def _run(chain):
    t = chain.experiment.make_target()
    return ChainRun(chain, t.real_data(chain.job.real_rng(), chain.job.n, chain.experiment.replicates), {})


def test_truths_tail_and_draws():
    np.testing.assert_allclose(truth_probs(4, "uniform", 1.0), 0.25)
    z = truth_probs(5, "zipf", 1.0)
    np.testing.assert_allclose(z, np.array([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5]) / sum([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5]))
    assert tail_categories(z, 0.15).tolist() == [4] and tail_categories(z, 0.2).tolist() == [3, 4]  # 0.088, 0.109
    assert tail_categories(np.full(10, 0.1), 0.1).tolist() == [0]
    t = make_target("categorical", {"K": 5, "truth": "zipf"})
    x = t.draw_real(generator("d"), 200000, 2)
    assert x.shape == (2, 200000, 1) and x.min() >= 0 and x.max() <= 4
    freq = np.bincount(x[0, :, 0], minlength=5) / 200000
    assert np.all(np.abs(freq - z) < 4 * np.sqrt(z * (1 - z) / 200000))


def test_fit_counts_masks_smoothing_and_sampling_bias():
    t = make_target("categorical", {"K": 3, "smoothing": 1.0})
    x = np.array([[[0], [0], [1], [0]], [[2], [2], [2], [1]]])
    np.testing.assert_allclose(t.fit(x).p_, [[4 / 7, 2 / 7, 1 / 7], [1 / 7, 2 / 7, 4 / 7]])
    masked = D.Masked(x, np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool))
    m = make_target("categorical", {"K": 3}).fit(masked)
    np.testing.assert_allclose(m.p_, [[1, 0, 0], [0, 0.25, 0.75]])
    metrics = m.evaluate(None, {}, {}, m)
    assert metrics["fixed"] == 0.5 and metrics["support_size"] == 1.5 and metrics["lost_any"] == 1.0
    sharp = m.sample(20000, 0.5, generator("s"))  # p^2 renormalised: 0.1 and 0.9 in replicate 1
    assert abs(np.mean(sharp[1, :, 0] == 2) - 0.9) < 0.01 and np.all(sharp[0] == 0)


@pytest.mark.parametrize("K,truth,method", [(10, "uniform", "counts"), (6, "zipf", "counts"), (6, "zipf", "sample")])
def test_heterozygosity_decays_by_one_minus_one_over_n_per_generation(K, truth, method):
    """Wright-Fisher: E[H_t] = H_truth (1 - 1/n)^(t + 1) (generation 0 refits n real draws), whether the
    items or their counts are drawn."""
    n, R, G = 30, 4000, 20
    chain = make_chain("categorical", {"K": K, "truth": truth, "method": method}, n=n, replicates=R)
    assert chain.job.target().method == method
    run = _run(chain)
    H = []
    for t in range(G + 1):
        model, _, _ = run.step(t)
        H.append(1 - np.sum(model.p_ ** 2, axis=1))
    H = np.array(H)  # (G + 1, R)
    theory = chain.job.target().closed_form("heterozygosity", np.arange(G + 1), chain.regime, n, 1.0)
    se = H.std(axis=1) / np.sqrt(R)
    assert np.all(np.abs(H.mean(axis=1) - theory) < 4 * se + 1e-12), (H.mean(axis=1), theory)


def test_mean_time_to_fixation_with_two_categories_is_the_markov_chain_value():
    n, R, G = 20, 3000, 600
    chain = make_chain("categorical", {"K": 2}, n=n, replicates=R, generations=G, block=G + 1)
    run = _run(chain)
    fixed_at = np.full(R, -1)
    for t in range(G + 1):
        model, _, _ = run.step(t)
        newly = (fixed_at < 0) & ((model.p_ == 0) | (model.p_ == 1)).any(axis=1)
        fixed_at[newly] = t
    assert np.all(fixed_at >= 0)
    exact = fixation_time_two_categories(n, 0.5)
    assert abs(fixed_at.mean() - exact) < 4 * fixed_at.std() / np.sqrt(R), (fixed_at.mean(), exact)
    # the diffusion approximation is close for n = 20 (and exact as n grows)
    assert abs(fixation_time_diffusion(n, [0.5, 0.5]) / exact - 1) < 0.1


def test_dedup_refits_the_uniform_distribution_on_the_seen_support():
    chain = make_chain("categorical", {"K": 20, "truth": "zipf"}, n=15, replicates=50,
                       curation={"selector": "dedup"})
    run = _run(chain)
    for t in range(4):
        model, synthetic, metrics = run.step(t)
        if t:
            p = model.p_
            for r in range(50):
                seen = p[r] > 0
                np.testing.assert_allclose(p[r, seen], 1 / seen.sum())
    assert metrics["curation_kept_fraction"] < 1


@pytest.mark.parametrize("regime", ["accumulate-subsample", "accumulate", "mix"])
def test_blocks_and_resume_give_the_same_numbers(regime):
    """Item pools (accumulate-subsample) and count pools (accumulate: the real items summarised, counts
    merged; mix: real items joined to drawn counts)."""
    chain = make_chain("categorical", {"K": 5}, regime=regime, n=12, replicates=20, rho=0.25)
    assert chain.job.target().method == ("sample" if regime == "accumulate-subsample" else "counts")
    whole = run_block(_run(chain), 0, 6)
    first = run_block(_run(chain), 0, 2)
    resumed = _run(chain)
    from ouroboros.chain import unstack_models

    resumed.resume(2, first.state, unstack_models(first.stacked_models(), resumed.template))
    assert first.metrics + run_block(resumed, 3, 6).metrics == whole.metrics
    if regime == "accumulate":  # the pool holds n items per generation plus the real ones, as counts
        np.testing.assert_array_equal(resumed.pool.stats().count, np.full(20, 12 * 8))


def test_counts_method_refuses_what_needs_items():
    from ouroboros.regimes import make_regime
    from ouroboros.targets import make_target

    t = make_target("categorical", {"method": "counts"})
    assert "cannot run regime 'accumulate-subsample'" in t.for_regime(make_regime("accumulate-subsample")).check(
        make_regime("accumulate-subsample"), 10, 2)
    from ouroboros.curation import Curation

    top = Curation({"selector": "top", "q": 0.5, "scorer": "truth"})
    replace = make_regime("replace")
    assert "cannot run this curation step" in t.for_regime(replace, curation=top).check(replace, 10, 2)
    # exact dedup keeps one of each category seen: it runs on counts, and `auto` keeps counts for it
    dedup = Curation({"selector": "dedup", "oversample": 2})
    assert t.for_regime(replace, curation=dedup).check(replace, 10, 2) is None
    auto = make_target("categorical")
    assert auto.for_regime(replace, curation=dedup).method == "counts"
    near = Curation({"selector": "dedup", "tolerance": 1.0})  # neighbouring indices count as duplicates
    assert auto.for_regime(replace, curation=near).method == "sample"
    scored = Curation({"selector": "dedup", "scorer": "truth"})  # scores are per item
    assert auto.for_regime(replace, curation=scored).method == "sample"


@pytest.mark.parametrize("K,m,oversample,truth", [(100, 100, 1, "zipf"), (100, 100, 4, "zipf"), (12, 4, 3, "zipf")])
def test_dedup_on_counts_keeps_what_dedup_on_items_keeps(K, m, oversample, truth):
    """Counts and items give the same kept categories in distribution: exactly those seen where at most m
    were seen; else m of them in the order of first occurrence (each category's kept share within 5 Monte
    Carlo standard errors of the items' over 20,000 replicates)."""
    from ouroboros.curation import Context, Curation

    R = 20_000
    t = make_target("categorical", {"K": K, "truth": truth})
    p = np.broadcast_to(t.truth_p, (R, K))
    items = t._draw(generator("dedup-items"), p, oversample * m)
    cur = Curation({"selector": "dedup", "oversample": oversample})
    ctx = lambda name: Context(model=None, gen0=None, target=t, reference={}, rng=generator(name))  # noqa: E731
    by_items, mi = cur.apply(items, m, ctx("a"))
    by_counts, mc = cur.apply(D.Counts.from_items(items, K), m, ctx("b"))
    kept_items = D.Counts.from_items(by_items, K).c
    assert isinstance(by_counts, D.Counts) and set(np.unique(by_counts.c)) <= {0.0, 1.0}
    seen = D.Counts.from_items(items, K).c > 0
    few = seen.sum(axis=1) <= m
    np.testing.assert_array_equal(by_counts.c[few], seen[few])  # the same replicates: the same kept set
    np.testing.assert_array_equal(kept_items[few], seen[few])
    assert (by_counts.c <= seen).all() and (by_counts.c.sum(axis=1) == np.minimum(seen.sum(axis=1), m)).all()
    assert mi["curation_kept_fraction"] == mc["curation_kept_fraction"]  # kept counts are equal per replicate
    if (~few).sum() > 1000:
        a, b = kept_items[~few].mean(axis=0), by_counts.c[~few].mean(axis=0)
        se = np.sqrt((a * (1 - a) + b * (1 - b)) / (~few).sum()) + 1e-12
        assert np.all(np.abs(a - b) <= 5 * se), np.max(np.abs(a - b) / se)
        # a wrong order (lowest index first, or uniform over the seen) is far outside: the test can fail
        wrong = np.argsort(np.argsort(~seen[~few], axis=1, kind="stable"), axis=1) < m
        assert np.max(np.abs(wrong.mean(axis=0) - a) / se) > 20


def test_mean_time_to_fixation_with_ten_categories_is_near_the_diffusion_value():
    """K = 10, n = 100: the diffusion approximation -2 n sum (1 - x) ln(1 - x) (what the sweep plots overlay)
    is within 3% of the simulated mean (it is exact as n grows); a chain that kept real data or smoothed its
    refit would never fix."""
    n, R = 100, 2000
    chain = make_chain("categorical", {"K": 10}, n=n, replicates=R)
    run = _run(chain)
    fixed_at, g = np.full(R, -1), 0
    while (fixed_at < 0).any() and g < 40 * n:
        model, _, _ = run.step(g)
        fixed_at[(fixed_at < 0) & ((model.p_ > 0).sum(axis=1) == 1)] = g
        g += 1
    assert np.all(fixed_at >= 0)
    theory = chain.job.target().expected_time("fixed", chain.regime, n, 1.0)
    assert theory == pytest.approx(fixation_time_diffusion(n, np.full(10, 0.1)))
    se = fixed_at.std() / np.sqrt(R)
    assert abs(fixed_at.mean() - theory) < 4 * se + 0.03 * theory, (fixed_at.mean(), theory)
    assert chain.job.target().expected_time("fixed", make_chain("categorical", {"K": 10}, regime="accumulate").regime,
                                        n, 1.0) is None


def _chain_of(regime, params, n, R, G=10, lam=1.0):
    from ouroboros.config import Chain, Experiment

    exp = Experiment(label="law", target="categorical", params=params, n=n, replicates=R, lam=lam, generations=G,
                     block=G + 1, regimes=(regime,))
    return Chain("test-laws", exp, regime, 0)


def test_top_k_sampling_draws_only_the_k_most_probable_categories():
    from ouroboros.targets.categorical import top_k_cut

    p = np.array([[0.1, 0.4, 0.2, 0.3], [0.25, 0.25, 0.25, 0.25]])
    np.testing.assert_allclose(top_k_cut(p, 2), [[0, 4 / 7, 0, 3 / 7], [0.5, 0.5, 0, 0]])  # ties: lower index
    np.testing.assert_array_equal(top_k_cut(p, 0), p)
    np.testing.assert_array_equal(top_k_cut(p, 4), p)
    for method in ("sample", "counts"):
        t = make_target("categorical", {"K": 4, "top_k": 2, "method": method}).set_state({"p": p})
        drawn = t.sample(4000, 1.0, generator("topk", method))
        c = drawn.c if method == "counts" else D.Counts.from_items(drawn, 4).c
        assert c[0, 0] == c[0, 2] == 0 and c[1, 2] == c[1, 3] == 0 and np.all(c.sum(axis=1) == 4000)
        assert abs(c[0, 1] / 4000 - 4 / 7) < 0.03


@pytest.mark.parametrize("params", [
    {"K": 3000, "truth": "zipf", "beta": 2.0, "source_top_k": 30},  # a generator that cut the tail at k = 30
    {"K": 3000, "truth": "zipf", "beta": 2.0, "source_beta": 3.0},  # a generator with a narrower tail
    {"K": 3000, "truth": "zipf", "beta": 1.5},
])
def test_missing_mass_of_a_memoriser_matches_the_tale_of_tails_law(params):
    """Generation 0 memorises T = n draws of the generator q: its test error (the truth's mass on categories it
    never saw) has expectation sum p_i (1 - q_i)^T (Dohmatob et al. 2024).  Within 4 standard errors over 3,000
    replicates; the law with q = p (no cut) is many standard errors away wherever the generator differs."""
    from ouroboros.regimes import make_regime

    n, R = 2000, 3000
    chain = _chain_of(make_regime("replace"), {**params, "method": "counts"}, n, R)
    run = _run(chain)
    model, _, metrics = run.step(0)
    p = model.truth_p
    missing = np.sum(np.where(model.p_ > 0, 0.0, p), axis=1)
    assert metrics["missing_mass"] == pytest.approx(missing.mean())
    theory = model.closed_form("missing_mass", np.array([0, 1]), chain.regime, n, 1.0)
    assert np.isnan(theory[1])
    se = missing.std() / np.sqrt(R)
    assert abs(missing.mean() - theory[0]) < 4 * se, (missing.mean(), theory[0], se)
    if "source_beta" in params or "source_top_k" in params:
        uncut = float(np.sum(p * (1 - p) ** n))
        assert abs(uncut - theory[0]) > 10 * se
        assert theory[0] > uncut  # the generator's missing tail is a floor more data cannot remove


@pytest.mark.parametrize("spec,method", [
    ({"kind": "replace"}, "counts"),
    ({"kind": "accumulate"}, "counts"),
    ({"kind": "accumulate"}, "sample"),
    ({"kind": "mix", "rho": 0.3, "fresh": True}, "sample"),
    ({"kind": "mix", "n_real": 10, "n_synthetic": 30, "fresh": True, "real_weight": 0.618}, "counts"),
])
def test_collision_probability_and_risk_follow_their_exact_recursions(spec, method):
    """E sum p_t^2 (Seddik et al. 2024's collision probability) and the risk E||p_t - p||^2 under replace, a
    fresh real share (weighted or not) and accumulate (Dey and Donoho 2024), with real data from a generator
    q != p: within 4 standard errors at every generation (20,000 replicates).  Accumulate's risk ratio stays
    below pi^2 / 6 where replace's grows as (1 - (1 - 1/n)^(t+1)) n."""
    from ouroboros.regimes import from_spec

    regime = from_spec(spec)
    n, R, G = 20, 20000, 10
    params = {"K": 6, "truth": "zipf", "beta": 1.0, "source_beta": 1.5, "method": method}
    chain = _chain_of(regime, params, n, R, G)
    run = _run(chain)
    col, err = [], []
    for t in range(G + 1):
        model, _, _ = run.step(t)
        col.append(np.sum(model.p_ ** 2, axis=1))
        err.append(np.sum((model.p_ - model.truth_p) ** 2, axis=1))
    target = chain.job.target()
    for name, values in (("collision", np.array(col)), ("sq_error", np.array(err))):
        theory = target.closed_form(name, np.arange(G + 1), regime, n, 1.0)
        se = values.std(axis=1) / np.sqrt(R)
        assert np.all(np.abs(values.mean(axis=1) - theory) < 4 * se), (name, values.mean(axis=1), theory)
    if spec["kind"] == "accumulate":
        same = make_target("categorical", {"K": 6, "truth": "zipf"})
        risk = same.closed_form("sq_error", np.arange(2001), regime, n, 1.0)
        assert risk[-1] / risk[0] < np.pi ** 2 / 6 and risk[-1] / risk[0] > 1.6
        assert same.closed_form("sq_error", np.array([2000]), from_spec("replace"), n, 1.0)[0] / risk[0] > n * 0.99
    assert target.closed_form("collision", np.arange(3), regime, n, 0.9) is None  # a sampling bias: no law
    assert make_target("categorical", {**params, "top_k": 3}).closed_form("collision", np.arange(3), regime, n,
                                                                         1.0) is None
