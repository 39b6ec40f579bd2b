"""Sample-quality metrics on hand-made point sets with known answers."""
import numpy as np
import pytest

from ouroboros import metrics as M
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


def test_density_and_coverage_by_hand_and_against_the_authors_package():
    """Real points 0, 1, 2, 3, 10 on a line, k = 1: radii 1, 1, 1, 1, 7 (strict balls).  Generated 0.5 lies in
    the balls of 0 and 1 (and of 10: |10 - 0.5| = 9.5 > 7, no), 2.5 in those of 2 and 3, 9 in that of 10: density
    (2 + 2 + 1) / (1 x 3) = 5/3; coverage: 0, 1, 2, 3 and 10 all hold one: 1.  Generated 20 alone: nothing."""
    real = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    d, c = M.density_coverage(real, np.array([[0.5], [2.5], [9.0]]), k=1)
    assert d == pytest.approx(5 / 3) and c == pytest.approx(1.0)
    d, c = M.density_coverage(real, np.array([[20.0], [21.0]]), k=1)
    assert d == 0.0 and c == 0.0
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(300, 3)), rng.normal(0.3, 1.2, size=(4, 120, 3))
    density, coverage = M.density_coverage(real, fake, k=5)
    assert density.shape == coverage.shape == (4,)
    prdc = pytest.importorskip("prdc", reason="prdc (Naeem et al.'s package) is in the test extra")
    import contextlib
    import io

    for i in range(4):
        with contextlib.redirect_stdout(io.StringIO()):
            ref = prdc.compute_prdc(real, fake[i], nearest_k=5)
        assert density[i] == pytest.approx(ref["density"]) and coverage[i] == pytest.approx(ref["coverage"])


def test_vendi_score_counts_effective_distinct_items():
    assert M.vendi(np.eye(5)) == pytest.approx(5.0)  # all different
    assert M.vendi(np.ones((5, 5))) == pytest.approx(1.0)  # all alike
    k = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1.0]])  # two alike, one apart: exp(H(2/3, 1/3))
    assert M.vendi(k) == pytest.approx(np.exp(-(2 / 3) * np.log(2 / 3) - (1 / 3) * np.log(1 / 3)))
    x = np.array([[0.0, 0.0], [0.0, 0.0], [100.0, 0.0]])
    assert M.vendi(M.rbf_kernel(x, 1.0)) == pytest.approx(M.vendi(k))
    feats = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])  # cosine: the first two point the same way
    np.testing.assert_allclose(M.cosine_kernel(feats), k, atol=1e-12)
    # n-grams (1 and 2): [1, 2] and [2, 1] share both unigrams, not their bigram: cosine 2/3
    np.testing.assert_allclose(M.ngram_kernel([[1, 2], [2, 1]], 2), [[1, 2 / 3], [2 / 3, 1]])
    assert M.vendi(M.ngram_kernel([[1, 2, 3], [1, 2, 3], [4, 5, 6]])) == pytest.approx(M.vendi(k))


def test_self_bleu_is_high_when_samples_repeat_one_another():
    same = [[1, 2, 3, 4, 5, 6]] * 4
    assert M.self_bleu(same) == pytest.approx(1.0)
    apart = [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], [13, 14, 15, 16, 17, 18]]
    assert M.self_bleu(apart) < 0.01
    # two of three identical: each of them scores 1 against the other; the third shares nothing
    assert M.self_bleu(same[:2] + apart[1:2]) == pytest.approx(2 / 3, abs=0.01)
    assert M.self_bleu([[1, 2, 3]]) == 0.0
