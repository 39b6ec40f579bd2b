"""One data path: every registered target, under every registered regime, gives the same numbers in every mode.

Each registered target runs with each of its ``test_settings`` (a class attribute), under each regime kind at its
default settings (the cheap targets also under the variants listed below), without and, where the target has the
``loglik`` hook, with a curation step, three ways: one generation per job (train, generate, curate and evaluate
jobs passing files, as the rules run them), one block job, and blocks of two generations resumed from the previous
block's state and models.  A target that runs one generation per job (``max_block = 1``: its state is not plain
arrays) has no block job; its per-job numbers must equal the engine's in memory (what a block job runs).  The
metrics tables must be identical.  A new target in ``ouroboros.targets.REGISTRY`` or regime in
``ouroboros.regimes.REGISTRY`` is covered the day it is registered, without writing a test.
"""
import pytest

from conftest import make_chain, run_blocks, run_chain, run_per_job, run_per_job_only
from ouroboros.chain import split_metrics
from ouroboros.regimes import REGISTRY, make_regime
from ouroboros.targets import REGISTRY as TARGETS
from ouroboros.targets import make_target, target_class
from ouroboros.targets.capabilities import curation_hooks

#: settings worth covering beside each kind's defaults (on the targets that are cheap to run)
VARIANTS = {
    "mix": [{"rho": 0.3, "fresh": True}, {"n_real": 12, "n_synthetic": 6},
            {"n_real": 4, "n_synthetic": 8, "fresh": True, "real_weight": 0.618}],  # a weighted refit
    "window": [{"k": 1}],
}
GENERATIONS = 5  # the cheap targets' chains (the torch targets run 2)
CHEAP = ("gaussian", "gmm", "categorical", "linreg")
REGIMES = [(kind, {}) for kind in REGISTRY] + [(kind, s) for kind, many in VARIANTS.items() for s in many]
CURATION = {"none": None, "top-gen0": {"selector": "top", "scorer": "gen0", "q": 0.5}}


def _generations(target: str) -> int:
    return GENERATIONS if target in CHEAP else 2


def _cases():
    for target in sorted(TARGETS):
        for i, _ in enumerate(target_class(target).test_settings):
            for kind, settings in REGIMES:
                if settings and target not in CHEAP:
                    continue
                if make_regime(kind, **settings).check_target(make_target(target, target_class(target).test_settings[i]["params"])):
                    continue  # the regime refuses this target (a weighted refit needs sufficient statistics)
                for curation in CURATION:
                    yield target, i, kind, settings, curation


def _chain(target, i, kind, settings, curation):
    from ouroboros.config import Chain, Experiment

    case = target_class(target).test_settings[i]
    base = make_chain(target=target, params=case["params"], n=case["n"], replicates=case["replicates"],
                      generations=_generations(target))
    regime = make_regime(kind, **settings)
    cur = None
    if CURATION[curation]:
        from ouroboros.curation import Curation

        cur = Curation(CURATION[curation], "test").to_spec()
    e = base.experiment
    exp = Experiment(label=e.label, target=e.target, params=e.params, n=e.n, replicates=e.replicates, lam=e.lam,
                     generations=e.generations, block=e.block, regimes=(regime,), curation=cur)
    return Chain(base.study, exp, regime, base.seed)


def _regime_id(case):
    kind, settings = case
    return kind + "".join(f"-{k}{v}" for k, v in settings.items())


def _id(case):
    target, i, kind, settings, curation = case
    return f"{target}{i}-{_regime_id((kind, settings))}-{curation}"


def test_every_registered_target_declares_test_settings():
    for name in TARGETS:
        cases = target_class(name).test_settings
        assert cases, f"target {name} declares no test_settings"
        for case in cases:
            assert set(case) == {"params", "n", "replicates"}, (name, case)
            make_target(name, case["params"])  # valid settings


@pytest.mark.parametrize("case", list(_cases()), ids=_id)
def test_every_target_and_regime_gives_the_same_numbers_in_every_mode(tmp_path, case):
    target, curation = case[0], case[-1]
    if CURATION[curation] and "loglik" not in curation_hooks(make_target(target, target_class(target).test_settings[case[1]]["params"])):
        pytest.skip(f"target {target} has no loglik hook to curate by")
    chain = _chain(*case)
    G = _generations(target)
    if target_class(target).max_block == 1:
        per_job = run_per_job_only(chain, tmp_path / "per-job", G)
        metrics, _ = run_chain(chain, G)
        in_memory = [(g, k, v) for g, m in enumerate(metrics) for k, v in split_metrics(m)[0].items()]
        assert len(per_job) > G
        assert sorted(per_job) == sorted(in_memory)
        return
    per_job, one_block = run_per_job(chain, tmp_path / "per-job", G)
    blocks = run_blocks(chain, tmp_path / "blocks", G, 2)
    assert len(per_job) > G
    assert sorted(per_job) == sorted(one_block)
    assert blocks == one_block


def test_dedup_curation_with_a_window_keeps_fewer_items_in_every_mode(tmp_path):
    """Deduplicated categories leave replicates with different item counts (masked points) in the window."""
    chain = _chain("categorical", 0, "window", {"k": 2}, "none")
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


@pytest.mark.parametrize("case", REGIMES, ids=_regime_id)
def test_build_receives_exactly_the_declared_sources_in_every_mode(tmp_path, monkeypatch, case):
    """What a regime declares (sources, uses_real, pools) is what its build gets, block job or train job."""
    chain = _chain("gaussian", 0, *case, "none")
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


@pytest.mark.parametrize("case", REGIMES, ids=_regime_id)
def test_dedup_on_category_counts_gives_the_same_numbers_in_every_mode(tmp_path, case):
    """Exact dedup of categories runs on counts (method auto): every regime, every mode, identical tables."""
    from ouroboros.config import Chain, Experiment
    from ouroboros.curation import Curation

    chain = _chain("categorical", 0, *case, "none")
    e = chain.experiment
    exp = Experiment(label=e.label, target=e.target, params={"K": 15}, n=e.n, replicates=e.replicates,
                     lam=e.lam, generations=e.generations, block=e.block, regimes=e.regimes,
                     curation=Curation({"selector": "dedup", "oversample": 2}, "test").to_spec())
    chain = Chain(chain.study, exp, chain.regime, chain.seed)
    assert chain.job.target().method == ("sample" if chain.regime.needs_points else "counts")
    per_job, one_block = run_per_job(chain, tmp_path / "per-job", GENERATIONS)
    assert sorted(per_job) == sorted(one_block)
    assert run_blocks(chain, tmp_path / "blocks", GENERATIONS, 2) == one_block
    kept = [v for g, m, v in one_block if m == "curation_kept_fraction"]
    assert 0 < min(kept) < 0.8
