"""The engine gives the same numbers however a chain is cut into jobs."""
import numpy as np
import pytest

from conftest import make_chain, run_per_job
from ouroboros import io, jobs
from ouroboros.chain import ChainRun, run_block, unstack_models
from ouroboros.seeding import generator

CASES = [
    ("gaussian", {"method": "sample"}, "replace"),
    ("gaussian", {"method": "sufficient"}, "accumulate"),
    ("gaussian", {"method": "sample", "d": 2}, "accumulate-subsample"),
    ("gaussian", {"method": "sufficient"}, "mix"),
    ("gaussian", {"method": "sample"}, "mix-fresh"),
    ("gmm", {"components": 2, "truth": "blob", "eval_size": 200, "test_size": 50}, "accumulate"),
    ("gmm", {"components": 2, "truth": "blob", "eval_size": 200, "test_size": 50}, "mix"),
]


def _chain(target, params, regime):
    fresh = regime.endswith("-fresh")
    return make_chain(target=target, params=params, regime=regime.replace("-fresh", ""), rho=0.3, fresh=fresh,
                      n=12, replicates=3 if target == "gmm" else 50)


def _fresh_run(chain):
    t = chain.experiment.make_target()
    return ChainRun(chain, t.real_data(chain.job.real_rng(), chain.job.n, chain.experiment.replicates),
                    t.reference(generator(chain.study, chain.experiment.label, "reference")))


@pytest.mark.parametrize("target,params,regime", CASES)
def test_block_size_does_not_change_the_numbers(target, params, regime):
    chain = _chain(target, params, regime)
    whole = run_block(_fresh_run(chain), 0, 7)
    first = run_block(_fresh_run(chain), 0, 2)
    resumed = _fresh_run(chain)
    models = unstack_models(first.stacked_models(), resumed.template)
    resumed.resume(2, first.state, models)
    second = run_block(resumed, 3, 7)
    assert whole.metrics == first.metrics + second.metrics


@pytest.mark.parametrize("target,params,regime", CASES)
def test_one_job_per_generation_equals_blocks(tmp_path, target, params, regime):
    chain = _chain(target, params, regime)
    rows, block_rows = run_per_job(chain, tmp_path, 4)
    assert [(g, m) for g, m, _ in rows] == [(g, m) for g, m, _ in block_rows]
    np.testing.assert_allclose([v for *_, v in rows], [v for *_, v in block_rows], rtol=1e-12, atol=1e-15)
    manifest = io.load_json(tmp_path / "gen4" / "trainset.json")
    assert manifest["items_per_replicate"] == (12 * 5 if chain.regime.kind == "accumulate" else 12)


def test_a_truncated_intermediate_is_named(tmp_path):
    chain = _chain("gaussian", {"method": "sample"}, "replace")
    spec = chain.spec()
    jobs.real_data(chain.real_spec(), tmp_path / "real.npz")
    data = (tmp_path / "real.npz").read_bytes()
    (tmp_path / "real.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(io.IntermediateFileError, match="truncated.*real.npz"):
        jobs.train(spec, 0, tmp_path / "real.npz", [], tmp_path / "model", tmp_path / "m.json")
    with pytest.raises(io.IntermediateFileError, match="missing.*nowhere.npz"):
        jobs.load_real(tmp_path / "nowhere.npz")
    (tmp_path / "metrics.csv").write_text("generation,metric,value\n1,std_mean,0.9\n2,std_me")
    with pytest.raises(io.IntermediateFileError, match="metrics.csv"):
        jobs.read_metrics(tmp_path / "metrics.csv")


def test_models_are_plain_arrays_without_pickle(tmp_path):
    chain = _chain("gmm", {"components": 2, "truth": "blob", "eval_size": 200, "test_size": 50}, "replace")
    run = _fresh_run(chain)
    model, _, _ = run.step(0)
    model.save(tmp_path / "m")
    with np.load(tmp_path / "m" / "state.npz", allow_pickle=False) as z:
        assert set(z.files) == {"weights", "means", "covariances"}
    from ouroboros.targets.base import Target

    again = Target.load(tmp_path / "m")
    np.testing.assert_array_equal(again.means_, model.means_)
    np.testing.assert_array_equal(again.sample(5, 1.0, generator("a")), model.sample(5, 1.0, generator("a")))


@pytest.mark.parametrize("method", ["sample", "sufficient"])
def test_every_regime_starts_from_the_same_generation_0_and_takes_the_first_shared_samples(method):
    """Generation 0 fits the same real data with the same streams in every regime and draws, in parts, what
    the neediest regime uses; a regime needing fewer takes the first ones (sufficient statistics: the first
    parts), so generation 1's training sets are nested."""
    from ouroboros.config import Study

    cfg = {"study": "g0", "seeds": [0], "generations": 1, "tracking": {"enabled": False},
           "experiments": [{"target": "gaussian", "n": 10, "replicates": 3, "params": {"method": method},
                            "regimes": ["replace", "accumulate", {"kind": "mix", "rho": 0.3}]}]}
    study = Study.from_config(cfg)
    runs = {}
    for chain in study.chains:
        run = _fresh_run(chain)
        model, synthetic, metrics = run.step(0)
        runs[chain.regime.label] = (model, synthetic, metrics)
    (m_rep, s_rep, x_rep), (m_acc, s_acc, x_acc), (m_mix, s_mix, x_mix) = runs.values()
    assert x_rep == x_acc == x_mix
    np.testing.assert_array_equal(m_rep.cov_, m_mix.cov_)
    assert study.experiments[0].gen0_parts() == [7, 3]
    from ouroboros import data as D

    # no regime here picks items: both methods keep statistics, drawn in parts
    drawn = _fresh_run(study.chains[0]).draw(0, m_rep)
    assert isinstance(drawn, D.Parts) and [int(p.count[0]) for p in drawn.parts] == [7, 3]
    np.testing.assert_allclose(s_mix.mean, drawn.parts[0].mean)
    np.testing.assert_allclose(s_rep.mean, D.concat(list(drawn.parts)).mean)
    if method == "sample":  # the statistics of the very points sample() draws from that stream, up to rounding
        pts = m_rep.sample_parts([7, 3], 1.0, study.chains[0].job.rng(0, "sample"))
        np.testing.assert_allclose(s_mix.mean, pts[:, :7].mean(axis=1), rtol=1e-12)
        np.testing.assert_allclose(s_mix.m2, D.Stats.from_points(pts[:, :7]).m2, rtol=1e-12)
        np.testing.assert_allclose(s_rep.m2, D.Stats.from_points(pts).m2, rtol=1e-12)
        np.testing.assert_allclose(s_acc.m2, s_rep.m2, rtol=1e-12)
    assert np.all(s_rep.count == 10) and np.all(s_mix.count == 7)


def test_generation_0_is_drawn_as_items_for_every_regime_when_one_regime_picks_items(tmp_path):
    """`auto` keeps statistics for replace but not for accumulate-subsample: the shared generation 0 is drawn
    as items for both (the same S_0 in each chain and in each mode; per job it once held statistics, and
    accumulate-subsample's generation 1 failed)."""
    from conftest import run_per_job
    from ouroboros.config import Study

    cfg = {"study": "g0", "seeds": [0], "generations": 2, "tracking": {"enabled": False},
           "experiments": [{"target": "gaussian", "n": 10, "replicates": 3,
                            "regimes": ["replace", "accumulate-subsample"]}]}
    study = Study.from_config(cfg)
    rep, sub = study.chains
    assert rep.job.target().method == "sufficient" and sub.job.target().method == "sample"
    assert rep.job.needs_items(0) and not rep.job.needs_items(1) and sub.job.needs_items(1)
    s0 = [_fresh_run(c).step(0)[1] for c in (rep, sub)]
    assert isinstance(s0[0], np.ndarray) and s0[0].shape == (3, 10, 1)
    np.testing.assert_array_equal(s0[0], s0[1])
    for chain in (rep, sub):
        per_job, one_block = run_per_job(chain, tmp_path / chain.regime.label, 2)
        assert sorted(per_job) == sorted(one_block)
