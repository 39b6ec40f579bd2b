import numpy as np
import pytest

from ouroboros.seeding import generator
from ouroboros.targets.gmm import GMMTarget, mixture_logpdf


def _at_truth(target, r=2):
    return target.clone().set_state({"weights": np.tile(target.truth_w, (r, 1)), "means": np.tile(target.truth_mu, (r, 1, 1)),
                                     "covariances": np.tile(target.truth_cov, (r, 1, 1, 1))})


def test_logpdf_matches_scipy():
    from scipy.stats import multivariate_normal

    t = GMMTarget()
    x = generator("x").standard_normal((1, 5, 2)) * 3
    expected = np.log(sum(w * multivariate_normal(m, c).pdf(x[0]) for w, m, c in zip(t.truth_w, t.truth_mu, t.truth_cov)))
    np.testing.assert_allclose(mixture_logpdf(x, t.truth_w[None], t.truth_mu[None], t.truth_cov[None])[0], expected)


def test_the_truth_scores_as_the_truth():
    t = GMMTarget(eval_size=20000)
    ref = t.reference(generator("ref"))
    real = t.real_data(generator("real"), 100, 2)
    m = _at_truth(t).evaluate(None, real, ref, None)
    assert abs(m["kl_truth_model"]) < 1e-12
    assert abs(m["kl_model_truth"]) < 1e-12
    assert m["tail_mass_ratio"] == pytest.approx(1.0, abs=0.25)
    assert m["weight_entropy"] == pytest.approx(np.log(3))
    assert m["component_std_min"] == pytest.approx(1.0) and m["component_std_max"] == pytest.approx(1.0)


def test_fit_recovers_a_separated_truth_and_kl_is_small():
    t = GMMTarget(components=3, eval_size=5000)
    real = t.real_data(generator("big"), 5000, 2)
    model = t.clone().fit(real["train"], generator("fit"))
    for r in range(2):
        got = model.means_[r][np.lexsort(model.means_[r].T[::-1])]
        want = t.truth_mu[np.lexsort(t.truth_mu.T[::-1])]
        np.testing.assert_allclose(got, want, atol=0.1)
    m = model.evaluate(None, real, t.reference(generator("ref")), model)
    assert 0 < m["kl_truth_model"] < 0.01 and m["kl_model_truth"] < 0.01


def test_sampling_bias_shrinks_each_component():
    t = _at_truth(GMMTarget(truth="blob", components=1), r=1)
    x = t.sample(20000, 0.25, generator("s"))
    assert x.std() == pytest.approx(0.5, rel=0.03)


def test_narrow_model_has_light_tails():
    t = GMMTarget(truth="blob", components=1, eval_size=20000)
    narrow = _at_truth(t)
    narrow.covariances_ = narrow.covariances_ * 0.5
    m = narrow.evaluate(None, t.real_data(generator("r"), 10, 2), t.reference(generator("ref")), None)
    assert m["tail_mass_ratio"] < 0.2


@pytest.mark.parametrize("truth,msg", [
    ("moons", "unknown truth preset"),
    ({"weights": [0.5, 0.6], "means": [[0, 0], [1, 1]]}, "sum to 1"),
    ({"weights": [1.0], "means": [[0, 0]], "stds": [-1.0]}, "positive"),
])
def test_bad_truth_is_rejected(truth, msg):
    with pytest.raises(ValueError, match=msg):
        GMMTarget(truth=truth)
