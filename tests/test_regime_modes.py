"""One data path: every registered regime gives the same numbers whatever the execution mode.

Each regime kind (at its default settings, plus the variants listed below) runs on the Gaussian (``sample``),
the GMM and the categorical target, with and without a curation step, three ways: one generation per job
(train, generate, curate and evaluate jobs passing files, as the rules run them), one block job, and blocks of
two generations resumed from the previous block's state and models.  The metrics tables must be identical.
A new regime kind registered in ``ouroboros.regimes.REGISTRY`` is covered without writing a test.
"""
import pytest

from conftest import make_chain, run_blocks, run_per_job
from ouroboros.regimes import REGISTRY, make_regime

#: settings worth covering beside each kind's defaults
VARIANTS = {
    "mix": [{"rho": 0.3, "fresh": True}, {"n_real": 12, "n_synthetic": 6}],
    "window": [{"k": 1}],
}
REGIMES = [(kind, {}) for kind in REGISTRY] + [(kind, s) for kind, many in VARIANTS.items() for s in many]
TARGETS = {
    "gaussian": ({"method": "sample"}, 30),
    "gmm": ({"components": 2, "truth": "blob", "eval_size": 200, "test_size": 50}, 3),
    "categorical": ({"K": 6, "method": "sample"}, 30),
}
CURATION = {"none": None, "top-gen0": {"selector": "top", "scorer": "gen0", "q": 0.5}}
GENERATIONS = 5


def _chain(target, kind, settings, curation):
    from ouroboros.config import Chain, Experiment

    params, replicates = TARGETS[target]
    base = make_chain(target=target, params=params, n=12, replicates=replicates, generations=GENERATIONS)
    regime = make_regime(kind, **settings)
    cur = None
    if CURATION[curation]:
        from ouroboros.curation import Curation

        cur = Curation(CURATION[curation], "test").to_spec()
    e = base.experiment
    exp = Experiment(label=e.label, target=e.target, params=e.params, n=e.n, replicates=e.replicates, lam=e.lam,
                     generations=e.generations, block=e.block, regimes=(regime,), curation=cur)
    return Chain(base.study, exp, regime, base.seed)


def _id(case):
    kind, settings = case
    return kind + "".join(f"-{k}{v}" for k, v in settings.items())


@pytest.mark.parametrize("curation", list(CURATION))
@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("case", REGIMES, ids=_id)
def test_every_regime_gives_the_same_numbers_in_every_mode(tmp_path, case, target, curation):
    chain = _chain(target, *case, curation)
    per_job, one_block = run_per_job(chain, tmp_path / "per-job", GENERATIONS)
    blocks = run_blocks(chain, tmp_path / "blocks", GENERATIONS, 2)
    assert len(per_job) > GENERATIONS
    assert sorted(per_job) == sorted(one_block)
    assert blocks == one_block


def test_dedup_curation_with_a_window_keeps_fewer_items_in_every_mode(tmp_path):
    """Deduplicated categories leave replicates with different item counts (masked points) in the window."""
    chain = _chain("categorical", "window", {"k": 2}, "none")
    from ouroboros.config import Chain, Experiment
    from ouroboros.curation import Curation

    e = chain.experiment
    exp = Experiment(label=e.label, target=e.target, params=dict(e.params, K=40), n=e.n, replicates=e.replicates,
                     lam=e.lam, generations=e.generations, block=e.block, regimes=e.regimes,
                     curation=Curation({"selector": "dedup"}, "test").to_spec())
    chain = Chain(chain.study, exp, chain.regime, chain.seed)
    per_job, one_block = run_per_job(chain, tmp_path / "per-job", GENERATIONS)
    assert sorted(per_job) == sorted(one_block)
    assert run_blocks(chain, tmp_path / "blocks", GENERATIONS, 3) == one_block
    kept = [v for g, m, v in one_block if m == "curation_kept_fraction"]
    assert min(kept) < 1


@pytest.mark.parametrize("case", REGIMES, ids=_id)
def test_build_receives_exactly_the_declared_sources_in_every_mode(tmp_path, monkeypatch, case):
    """What a regime declares (sources, uses_real, pools) is what its build gets, block job or train job."""
    chain = _chain("gaussian", *case, "none")
    regime = chain.regime
    seen = []
    original = type(regime).build

    def spy(self, src):
        seen.append((src.t, sorted(src.synthetic), src.real is not None, src.pool is not None))
        return original(self, src)

    monkeypatch.setattr(type(regime), "build", spy)
    run_per_job(chain, tmp_path, GENERATIONS)
    expected = [(t, [] if regime.pools else regime.sources(t), regime.uses_real(t), regime.pools)
                for t in range(1, GENERATIONS + 1)]
    assert seen == expected + expected  # the train jobs, then the block job
    if case == ("window", {}):  # real data plus the last k = 3 generations' n items each
        from ouroboros import io

        sizes = [io.load_json(tmp_path / f"gen{t}" / "trainset.json")["items_per_replicate"] for t in range(6)]
        assert sizes == [12, 24, 36, 48, 48, 48]


@pytest.mark.parametrize("case", REGIMES, ids=_id)
def test_dedup_on_category_counts_gives_the_same_numbers_in_every_mode(tmp_path, case):
    """Exact dedup of categories runs on counts (method auto): every regime, every mode, identical tables."""
    from ouroboros.config import Chain, Experiment
    from ouroboros.curation import Curation

    chain = _chain("categorical", *case, "none")
    e = chain.experiment
    exp = Experiment(label=e.label, target=e.target, params={"K": 15}, n=e.n, replicates=e.replicates,
                     lam=e.lam, generations=e.generations, block=e.block, regimes=e.regimes,
                     curation=Curation({"selector": "dedup", "oversample": 2}, "test").to_spec())
    chain = Chain(chain.study, exp, chain.regime, chain.seed)
    assert chain.target().method == ("sample" if chain.regime.needs_points else "counts")
    per_job, one_block = run_per_job(chain, tmp_path / "per-job", GENERATIONS)
    assert sorted(per_job) == sorted(one_block)
    assert run_blocks(chain, tmp_path / "blocks", GENERATIONS, 2) == one_block
    kept = [v for g, m, v in one_block if m == "curation_kept_fraction"]
    assert 0 < min(kept) < 0.8
