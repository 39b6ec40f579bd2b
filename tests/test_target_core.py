"""A target that writes only the required core runs through every execution mode, and takes part in nothing
it does not opt into (curation, theory, pooled statistics, a flavor of its own in MLflow)."""
import numpy as np
import pytest

from conftest import make_chain, run_blocks, run_per_job
from ouroboros.targets import REGISTRY
from ouroboros.targets.base import Target
from ouroboros.targets import capabilities as C


class MeanTarget(Target):
    """The core only: a 1-D location refit by the sample mean, unit spread."""

    name = "mean-core"
    default_block = 4
    params_schema = {"type": "object", "additionalProperties": False, "properties": {}}
    metrics = {"mu_sq": "mean over replicates of mu^2"}

    def real_data(self, rng, n, replicates):
        return {"train": rng.standard_normal((replicates, n, 1)), "test": rng.standard_normal((1, 100, 1))}

    def fit(self, data, rng):
        self.mu_ = np.asarray(data, float).mean(axis=1)
        return self

    def sample(self, n, lam, rng):
        return self.mu_[:, None, :] + np.sqrt(lam) * rng.standard_normal((self.mu_.shape[0], n, 1))

    def evaluate(self, samples, real, reference, gen0):
        return {"mu_sq": float(np.mean(self.mu_ ** 2))}

    def get_state(self):
        return {"mu": self.mu_}

    def set_state(self, state):
        self.mu_ = np.asarray(state["mu"], float)
        return self


def test_a_target_must_write_the_core():
    class Half(Target):
        name = "half"

        def fit(self, data, rng):
            return self

    with pytest.raises(TypeError, match="abstract"):
        Half()


@pytest.mark.parametrize("regime", ["replace", "accumulate", "window"])
def test_the_core_alone_runs_in_every_mode_with_the_same_numbers(tmp_path, monkeypatch, regime):
    monkeypatch.setitem(REGISTRY, MeanTarget.name, f"{__name__}:MeanTarget")
    chain = make_chain(target=MeanTarget.name, regime=regime, n=8, replicates=20, generations=5)
    per_job, one_block = run_per_job(chain, tmp_path / "per-job", 5)
    assert sorted(per_job) == sorted(one_block) and len(per_job) == 6 * 2  # mu_sq and the engine's train_items
    assert run_blocks(chain, tmp_path / "blocks", 5, 2) == one_block
    t = chain.job.target()
    assert not C.stats_sufficient(t) and C.curation_hooks(t) == () and C.closed_form(
        t, "mu_sq", np.arange(3), chain.regime, 8, 1.0) is None
    assert not chain.job.pool_as_stats  # a pool of points: no sufficient statistics were declared


def test_capabilities_are_declared_by_the_shipped_targets():
    from ouroboros import mlflow_models
    from ouroboros.targets import make_target

    g, c, gmm = make_target("gaussian"), make_target("categorical"), make_target("gmm")
    assert C.stats_sufficient(g) and C.stats_sufficient(c) and not C.stats_sufficient(gmm)
    assert g.exact_method == "sufficient" and c.exact_method == "counts"
    assert "truth_logpdf" in C.curation_hooks(gmm) and C.curation_hooks(make_target("linreg")) == ()
    assert mlflow_models.uses_array_model(g) and not mlflow_models.uses_array_model(gmm)
    assert mlflow_models.logs_without_run(gmm) and not mlflow_models.logs_without_run(make_target("vae"))


def test_a_target_without_curation_hooks_is_refused_a_curation_step():
    from ouroboros.curation import Curation

    assert Curation({"selector": "random", "oversample": 2}, "x").check(MeanTarget()) == \
        "target mean-core cannot curate its samples"


@pytest.mark.parametrize("name, params", [("gaussian", {"d": 2, "method": "sufficient"}),
                                          ("categorical", {"K": 5, "method": "counts"})])
def test_a_loaded_model_draws_items_whatever_method_fitted_it(tmp_path, name, params):
    """The public API (``ouroboros.load_generation``, the MLflow array model) gives items when asked for
    them, even for a chain that drew sufficient statistics."""
    from ouroboros import paths
    from ouroboros.results import load_generation
    from ouroboros.targets import make_target

    rng = np.random.default_rng(0)
    model = make_target(name, params)
    model.fit(model.real_data(rng, 50, 3)["train"], rng)
    assert not isinstance(model.sample(10, 1.0, rng), np.ndarray)  # the chain's own draws: statistics
    folder = tmp_path / paths.generation("s", "e", "replace", 0, 4).model
    model.save(folder)
    loaded = load_generation("s", "e", "replace", 0, 4, root=tmp_path)
    x = loaded.sample(100, 1.0, np.random.default_rng(1))
    assert isinstance(x, np.ndarray) and x.shape[:2] == (3, 100)
    for key, value in model.get_state().items():
        np.testing.assert_array_equal(loaded.get_state()[key], value)
