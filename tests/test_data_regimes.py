import numpy as np
import pytest

from ouroboros import data as D
from ouroboros.regimes import Pool, Sources
from ouroboros.regimes import make_regime as Regime
from ouroboros.seeding import generator


def test_stats_match_numpy():
    x = generator("x").standard_normal((3, 50, 4)) * 2 + 1
    s = D.Stats.from_points(x)
    for r in range(3):
        np.testing.assert_allclose(s.mean[r], x[r].mean(0))
        np.testing.assert_allclose(s.m2[r] / 50, np.cov(x[r].T, bias=True), atol=1e-12)


def test_stats_merge_equals_stats_of_union_and_is_stable_far_from_zero():
    rng = generator("merge")
    a = 1e4 + 1e-3 * rng.standard_normal((2, 30, 1))
    b = 1e4 + 1e-3 * rng.standard_normal((2, 70, 1))
    merged = D.Stats.from_points(a).merge(D.Stats.from_points(b))
    joint = D.Stats.from_points(np.concatenate([a, b], axis=1))
    np.testing.assert_allclose(merged.count, 100)
    np.testing.assert_allclose(merged.mean, joint.mean, rtol=1e-15)
    np.testing.assert_allclose(merged.m2, joint.m2, rtol=1e-6)
    assert np.all(merged.m2 > 0)


def test_subsample_draws_distinct_items_per_replicate():
    pts = np.arange(2 * 20, dtype=float).reshape(2, 20, 1)
    sub = D.subsample(pts, 7, generator("s"))
    assert sub.shape == (2, 7, 1)
    for r in range(2):
        vals = sub[r, :, 0]
        assert len(set(vals)) == 7 and set(vals) <= set(pts[r, :, 0])
    with pytest.raises(ValueError):
        D.subsample(pts, 21, generator("s"))


def _setup(n=10, t=3):
    """Real items are 0.x, S_j items are j + 1 (+ 0.0x for the position)."""
    real = (np.arange(n) / 100.0)[None, :, None]
    samples = {j: (j + 1 + np.arange(n) / 100.0)[None, :, None] for j in range(t)}
    return real, samples


def _build(regime, t, n=10):
    """Generation t's training set from exactly the sources the regime declares."""
    real, samples = _setup(n, t)
    if t == 0:
        return real[0, :, 0]
    pool = None
    if regime.pools:
        pool = Pool(real, as_stats=False)
        for j in range(t):
            pool.add(samples[j][:, : regime.n_synthetic(n)])
        pool = pool.data()
    synthetic = {} if regime.pools else {j: samples[j][:, : regime.n_synthetic(n)] for j in regime.sources(t)}
    fresh = lambda rng, m: np.full((1, m, 1), -1.0)  # noqa: E731
    src = Sources(t=t, n=n, real=real if regime.uses_real(t) else None, synthetic=synthetic, pool=pool,
                  rng=generator("b", t), draw_real=fresh)
    return regime.build(src)[0, :, 0]


def test_window_keeps_the_real_data_and_the_last_k_generations():
    regime = Regime("window", k=3)
    assert regime.label == "window-k3" and regime.sources(5) == [2, 3, 4] and regime.sources(2) == [0, 1]
    out = _build(regime, 5)
    assert out.size == 40
    assert sorted(set(np.floor(out).astype(int))) == [0, 3, 4, 5]  # real, S_2, S_3, S_4
    assert _build(regime, 1).size == 20


def test_window_of_one_is_the_fixed_real_set_plus_the_previous_generation():
    w = Regime("window", k=1)
    mix = Regime("mix", n_real=10, n_synthetic=10)
    assert w.markov and (w.n_real(10), w.n_synthetic(10)) == (mix.n_real(10), mix.n_synthetic(10))
    np.testing.assert_array_equal(np.sort(_build(w, 3)), np.sort(_build(mix, 3)))


def test_a_long_window_holds_what_accumulate_pools():
    np.testing.assert_array_equal(_build(Regime("window", k=50), 4), _build(Regime("accumulate"), 4))


def test_every_regime_reads_nothing_it_dropped():
    """The engine keeps S_j only while a later generation reads it: sources(t + 1) lies within sources(t) + [t]."""
    from ouroboros.regimes import REGISTRY

    for kind in REGISTRY:
        for regime in (Regime(kind), Regime(kind, k=1) if kind == "window" else Regime(kind)):
            for t in range(40):
                assert set(regime.sources(t + 1)) <= set(regime.sources(t)) | {t}, (kind, t)
                assert regime.sources(t) == sorted(regime.sources(t)) and all(0 <= j < t for j in regime.sources(t))


def test_closed_form_properties_come_from_the_data_flow():
    assert Regime("replace").fully_synthetic(10) and Regime("mix", rho=0.0).fully_synthetic(10)
    assert not Regime("mix", rho=0.1).fully_synthetic(10) and not Regime("accumulate").markov
    assert not Regime("window", k=2).markov and Regime("window", k=1).markov
    assert Regime("mix", rho=0.1, fresh=True).fresh_real and not Regime("window").fresh_real
    assert Regime("window", k=4).most_sources(10) == 4 and Regime("accumulate").most_sources(10) == 10


def test_generation_zero_trains_on_real_data():
    from ouroboros.regimes import REGISTRY

    for kind in REGISTRY:
        np.testing.assert_array_equal(_build(Regime(kind), 0), np.arange(10) / 100)


def test_replace_uses_only_previous_samples():
    out = _build(Regime("replace"), 3)
    assert out.size == 10 and np.all(np.floor(out) == 3)


def test_accumulate_keeps_real_and_every_earlier_generation():
    out = _build(Regime("accumulate"), 3)
    assert out.size == 40
    assert sorted(set(np.floor(out).astype(int))) == [0, 1, 2, 3]


def test_accumulate_subsample_draws_n_distinct_items_from_the_pool():
    out = _build(Regime("accumulate-subsample"), 3)
    assert out.size == 10 and len(set(out)) == 10
    assert set(np.floor(out).astype(int)) <= {0, 1, 2, 3}


def test_mix_keeps_a_real_fraction():
    regime = Regime("mix", rho=0.3)
    assert (regime.n_real(10), regime.n_synthetic(10)) == (3, 7)
    out = _build(regime, 3)
    assert out.size == 10
    assert np.sum(out < 1) == 3 and np.sum(np.floor(out) == 3) == 7


def test_mix_fresh_draws_new_real_data():
    out = _build(Regime("mix", rho=0.3, fresh=True), 2)
    assert np.sum(out == -1.0) == 3 and np.sum(np.floor(out) == 2) == 7


def test_mix_with_all_real_data_ignores_samples():
    regime = Regime("mix", rho=1.0)
    assert regime.n_synthetic(10) == 0
    out = _build(regime, 2)
    assert out.size == 10 and np.all(out < 1)


def test_regime_labels_and_validation():
    assert Regime("mix", rho=0.1).label == "mix-rho0.1"
    assert Regime("mix", rho=0.1, fresh=True).label == "mix-rho0.1-fresh"
    assert Regime("accumulate-subsample").label == "accumulate-subsample"
    with pytest.raises(ValueError, match="allowed"):
        Regime("resample")
    with pytest.raises(ValueError):
        Regime("mix", rho=1.5)


def test_stats_pool_matches_points_pool_for_the_gaussian_fit():
    real, samples = _setup(10, 3)
    pts, st = Pool(real, False), Pool(real, True)
    for j in range(3):
        pts.add(samples[j])
        st.add(samples[j])
    direct = D.Stats.from_points(pts.data())
    np.testing.assert_allclose(st.data().mean, direct.mean)
    np.testing.assert_allclose(st.data().m2, direct.m2)
