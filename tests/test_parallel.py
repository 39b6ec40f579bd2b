"""Large draws run on a job's threads, cut into a fixed partition: the numbers never depend on the threads."""
import numpy as np
import pytest

from conftest import make_chain, run_chain
from ouroboros import parallel
from ouroboros.data import Stats, _mean_m2
from ouroboros.targets import make_target


@pytest.fixture(autouse=True)
def _one_thread_after():
    yield
    parallel.set_threads(1)


def test_partition_depends_on_the_shape_only():
    assert parallel.n_chunks(1000, 1000) == 4  # 10^6 numbers: four chunks of about 2^18
    assert parallel.n_chunks(500, 100) == 1    # the default study's Gaussian: one chunk, the stream itself
    assert parallel.n_chunks(3, 10**7) == 3    # never more chunks than rows
    assert parallel.wanted_threads(1000, 1000) == 4 and parallel.wanted_threads(10**5, 1000) == parallel.MAX_THREADS
    parts = parallel.bounds(1000, 4)
    assert [s.start for s in parts] == [0, 250, 500, 750] and parts[-1].stop == 1000


@pytest.mark.parametrize("shape", [(1000, 1000, 1), (7, 100_000, 2), (3, 5, 1)])
def test_same_numbers_whatever_the_threads(shape):
    draws = []
    for threads in (1, 2, 3, 8):
        parallel.set_threads(threads)
        draws.append(parallel.standard_normal(np.random.default_rng(42), shape))
    for d in draws[1:]:
        np.testing.assert_array_equal(d, draws[0])
    assert draws[0].shape == shape


def test_chunks_are_independent_streams_and_normal():
    parallel.set_threads(2)
    x = parallel.standard_normal(np.random.default_rng(1), (1000, 1000, 1))
    parts = [x[s].ravel() for s in parallel.bounds(1000, 4)]
    assert not np.array_equal(parts[0][:100], parts[1][:100])
    # 10^6 standard normals: mean within 5 standard errors, variance within 5 of its standard errors
    assert abs(x.mean()) < 5e-3 and abs(x.var() - 1) < 5 * np.sqrt(2 / x.size)
    corr = np.corrcoef(parts[0][:200_000], parts[1][:200_000])[0, 1]
    assert abs(corr) < 5 / np.sqrt(200_000)


def test_one_chunk_is_the_stream_itself():
    """Small draws (every test-sized and default-study chain) keep the exact numbers of a plain draw."""
    got = parallel.standard_normal(np.random.default_rng(7), (20, 50, 1))
    np.testing.assert_array_equal(got, np.random.default_rng(7).standard_normal((20, 50, 1)))


def test_in_place_transform_per_chunk():
    parallel.set_threads(2)
    shift = np.arange(600, dtype=float)[:, None, None]
    x = parallel.standard_normal(np.random.default_rng(3), (600, 2000, 1), then=lambda rows, z: z.__iadd__(shift[rows]))
    plain = parallel.standard_normal(np.random.default_rng(3), (600, 2000, 1))
    np.testing.assert_allclose(x, plain + shift)


def test_row_reduce_matches_the_whole_array():
    x = np.random.default_rng(0).standard_normal((1000, 1000, 1))
    for threads in (1, 2, 4):
        parallel.set_threads(threads)
        mean, m2 = parallel.row_reduce(_mean_m2, x)
        want_mean, want_m2 = _mean_m2(x)
        np.testing.assert_allclose(mean, want_mean, rtol=0, atol=1e-15)
        np.testing.assert_allclose(m2, want_m2, rtol=1e-13)
        stats = Stats.from_points(x)
        np.testing.assert_array_equal(stats.mean, mean)


def test_gaussian_threads_and_chain_numbers_do_not_depend_on_threads():
    big = make_target("gaussian", {"method": "sample"})
    assert big.threads(1000, 1000) == 4 and big.threads(100, 500) == 1
    assert make_target("gaussian", {"method": "sufficient"}).threads(1000, 1000) == 1
    assert make_target("gmm", {}).threads(1000, 1000) == 1
    chain = make_chain(target="gaussian", params={"method": "sample"}, n=2000, replicates=300, generations=3)
    results = []
    for threads in (1, 2):
        parallel.set_threads(threads)
        results.append(run_chain(chain, 3)[0])
    assert results[0] == results[1]
