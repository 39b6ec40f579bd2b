"""The KDE target (Kazdan et al. 2024's 2-D toy): data, bandwidth rules, sampling, log-density, and the exact
recursion of its spread under replace and accumulate."""
import numpy as np
import pytest

from conftest import run_chain
from ouroboros import data as D
from ouroboros.chain import BlockResult, unstack_models
from ouroboros.seeding import generator
from ouroboros.targets import make_target
from ouroboros.targets.kde import bandwidth_factor


def _chain(rule, regime, n, R, G, lam=1.0, dataset="moons"):
    from ouroboros.config import Chain, Experiment
    from ouroboros.regimes import from_spec

    reg = from_spec(regime)
    exp = Experiment(label="kde", target="kde", params={"dataset": dataset, "bandwidth_rule": rule, "bandwidth": 0.2,
                                                        "test_size": 20},
                     n=n, replicates=R, lam=lam, generations=G, block=G + 1, regimes=(reg,))
    return Chain("test-kde", exp, reg, 0)


@pytest.mark.parametrize("rule,regime,lam", [("fixed", "replace", 1.0), ("scott", "replace", 1.0),
                                             ("silverman", "accumulate", 1.0), ("fixed", "accumulate", 0.5)])
def test_spread_follows_its_exact_recursion(rule, regime, lam):
    """E[data_variance] and E[total_variance] per generation within 4 standard errors (4,000 replicates): a
    sampler that forgot the kernel noise (the spread would decay as (1 - 1/n)^t) or a pool that dropped the
    gap between a generation's mean and the pool's is many standard errors off."""
    n, R, G = 30, 4000, 8
    chain = _chain(rule, regime, n, R, G, lam)
    _, run = run_chain(chain, 0)
    data_var, total = [], []
    for t in range(G + 1):
        model = run.model if t == 0 else run.step(t, evaluate=False)[0]
        _, v = model._moments()
        data_var.append(v)
        total.append(v + 2 * model.h_ ** 2)
    target = chain.job.target()
    for name, values in (("data_variance", np.array(data_var)), ("total_variance", np.array(total))):
        theory = target.closed_form(name, np.arange(G + 1), chain.regime, n, lam)
        se = values.std(axis=1) / np.sqrt(R)
        assert np.all(np.abs(values.mean(axis=1) - theory) < 4 * se), (name, values.mean(axis=1), theory)
    if regime == "replace":
        no_kernel = (1 - 1 / n) ** (G + 1) * target.truth_variance
        assert abs(np.mean(data_var[-1]) - no_kernel) > 10 * np.std(data_var[-1]) / np.sqrt(R)


def test_fixed_bandwidth_drifts_to_the_kernels_stationary_spread():
    t = make_target("kde", {"dataset": "circles", "bandwidth": 0.05})
    from ouroboros.regimes import from_spec

    v = t.closed_form("data_variance", np.array([0, 5000]), from_spec("replace"), 40, 1.0)
    assert v[0] == pytest.approx((1 - 1 / 40) * t.truth_variance)
    assert v[1] == pytest.approx(39 * 2 * 0.05 ** 2, rel=1e-6)  # (n - 1) d h^2, whatever the data
    assert t.closed_form("test_loglik", np.arange(3), from_spec("replace"), 40, 1.0) is None
    assert t.closed_form("data_variance", np.arange(3), from_spec("accumulate-subsample"), 40, 1.0) is None


def test_bandwidth_rules_sampling_and_log_density_by_hand():
    from scipy.stats import gaussian_kde

    x = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 1.0]]])
    scott = make_target("kde", {"bandwidth_rule": "scott"}).fit(x)
    ref = gaussian_kde(x[0].T, bw_method="scott")
    assert bandwidth_factor("scott", 4, 2) == pytest.approx(ref.factor)
    s2 = np.mean(np.var(x[0], axis=0, ddof=1))
    assert scott.h_[0] == pytest.approx(ref.factor * np.sqrt(s2))
    fixed = make_target("kde", {"bandwidth": 0.5}).fit(x)
    y = np.array([[0.5, 0.5], [10.0, 10.0]])
    by_hand = np.log(np.mean(np.exp(-np.sum((y[:, None] - x[0][None]) ** 2, axis=2) / (2 * 0.25)), axis=1)
                     / (2 * np.pi * 0.25))
    np.testing.assert_allclose(fixed.log_density(y)[0], by_hand)
    np.testing.assert_allclose(fixed.log_density(y, replicates=1, max_elements=3)[0], by_hand)  # in chunks
    masked = make_target("kde", {"bandwidth": 0.01}).fit(D.Masked(x, np.array([[True, False, False, True]])))
    drawn = masked.sample(4000, 1.0, generator("kde", "masked"))
    near = np.min(np.linalg.norm(drawn[0][:, None] - x[0][[0, 3]][None], axis=2), axis=1)
    assert drawn.shape == (1, 4000, 2) and np.all(near < 0.1)  # only the kept points, plus kernel noise
    assert abs(np.mean(np.linalg.norm(drawn[0] - x[0][0], axis=1) < 0.1) - 0.5) < 0.05
    sharp = fixed.sample(20000, 0.25, generator("kde", "lam"))  # the bias narrows the kernel to sqrt(lam) h
    resid = sharp[0] - x[0][np.argmin(np.linalg.norm(sharp[0][:, None] - x[0][None], axis=2), axis=1)]
    assert np.std(resid) == pytest.approx(0.25, rel=0.1)


def test_growing_models_stack_and_unstack_per_block():
    """Under accumulate the KDE's points grow each generation: a block pads them when stacking and cuts each back."""
    t = make_target("kde", {})
    rng = np.random.default_rng(0)
    states = [{"points": rng.random((2, m, 2)), "weights": np.ones((2, m)), "h": np.full(2, 0.1)} for m in (3, 6, 9)]
    block = BlockResult(4, 6, models=states)
    arrays = block.stacked_models()
    assert arrays["points"].shape == (3, 2, 9, 2) and arrays["points__shape"].tolist()[0] == [2, 3, 2]
    for (g, model), s in zip(unstack_models(arrays, t), states):
        np.testing.assert_array_equal(model.points_, s["points"])
        np.testing.assert_array_equal(model.weights_, s["weights"])
    same = BlockResult(0, 1, models=[{"h": np.ones(2)}, {"h": np.zeros(2)}]).stacked_models()
    assert set(same) == {"generation", "h"}


@pytest.mark.parametrize("dataset", ["moons", "circles", "blobs"])
def test_datasets_are_scikit_learns_generators(dataset):
    t = make_target("kde", {"dataset": dataset, "noise": 0.05})
    real = t.real_data(generator("kde", dataset), 100, 3)
    assert real["train"].shape == (3, 100, 2) and real["test"].shape == (1, 500, 2)
    assert not np.allclose(real["train"][0], real["train"][1])
    assert t.truth_variance > 0.1
