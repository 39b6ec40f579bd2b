"""Sample-quality metrics on hand-made point sets with known answers."""
import numpy as np
import pytest

from ouroboros.metrics import class_histogram_stats, frechet_distance, knn_radii, mean_pairwise_distance, precision_recall


def _grid(offset=0.0, step=1.0, n=10):
    xs = np.arange(n) * step + offset
    return np.array([[x, y] for x in xs for y in xs])


def test_knn_radius_on_a_grid():
    # on a unit grid every interior point's 4 nearest neighbours are at distance 1, the next ones at sqrt(2)
    r = knn_radii(_grid(), k=4)
    assert r[11] == pytest.approx(1.0)
    assert knn_radii(_grid(), k=5)[11] == pytest.approx(np.sqrt(2))


def test_identical_sets_have_full_precision_and_recall():
    x = _grid()
    assert precision_recall(x, x.copy(), k=5) == (1.0, 1.0)


def test_collapsed_generator_is_precise_but_misses_the_rest():
    real = _grid()  # 100 points on [0, 9]^2
    fake = real[(real[:, 0] < 2) & (real[:, 1] < 5)]  # 10 points in one corner
    p, r = precision_recall(real, fake, k=5)
    assert p == 1.0
    assert 0.05 < r < 0.35  # only real points near the corner are covered


def test_far_away_generator_has_zero_precision_and_recall():
    p, r = precision_recall(_grid(), _grid(offset=100.0), k=5)
    assert (p, r) == (0.0, 0.0)


def test_half_overlap():
    real = _grid()
    fake = np.concatenate([real[:50], real[:50] + 100.0])  # half on the real rows 0-4, half far away
    p, r = precision_recall(real, fake, k=5)
    assert p == pytest.approx(0.5)
    assert 0.5 <= r <= 0.7


def test_frechet_distance_of_shifted_gaussians():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20000, 3))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    # N(0, I) vs N(m, 4 I): |m|^2 + 3 (1 + 4 - 2 * 2) = |m|^2 + 3
    y = 2.0 * rng.standard_normal((20000, 3)) + np.array([1.0, 2.0, 0.0])
    assert frechet_distance(x, y) == pytest.approx(5.0 + 3.0, rel=0.03)


def test_mean_pairwise_distance():
    assert mean_pairwise_distance(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)
    assert mean_pairwise_distance(np.zeros((5, 2))) == 0.0


def test_class_histogram_stats():
    ent, kl = class_histogram_stats(np.arange(10).repeat(3), np.full(10, 0.1), 10)
    assert ent == pytest.approx(np.log(10)) and kl == pytest.approx(0.0, abs=1e-12)
    ent, kl = class_histogram_stats(np.zeros(30, int), np.full(10, 0.1), 10)
    assert ent == 0.0 and kl == pytest.approx(np.log(10))
