"""The diffusion target: diffusers' schedulers as DDPM, a point model against a Gaussian truth, images, curation
hooks and the self-correction, save/load, bad input, and both execution modes."""
import numpy as np
import pytest

from conftest import SHARED_DATA, make_chain, run_blocks, run_chain, run_per_job
from ouroboros.seeding import generator
from ouroboros.targets import make_target
from ouroboros.targets.base import Target

POINTS = {"data": "gmm", "truth": "blob", "train_steps": 150, "eval_size": 300, "test_size": 100, "hidden": 32,
          "depth": 2, "steps": 20, "device": "cpu"}
DIGITS = {"data": "digits", "channels": [8, 16], "norm_groups": 4, "train_steps": 30, "batch_size": 32, "steps": 5,
          "judge_epochs": 2, "device": "cpu", "eval_max": 100, "score_draws": 2}
ONE_D = {"weights": [1.0], "means": [[3.0]], "stds": [0.5]}


def _fit(params, n=300, seed=0):
    t = make_target("diffusion", params)
    real = t.real_data(generator("real", seed), n, 1)
    return t, real, t.clone().fit(real["train"], generator("fit", seed))


def test_the_ddpm_sampler_is_diffusers_ddpm_step():
    """``sampler: ddpm`` runs DDIMScheduler.step with eta = 1 and given noise: each step equals DDPMScheduler.step
    drawing the same noise (DDPM's ancestral sampler), for points (no clipping) and images (x0 clipped)."""
    import torch
    from diffusers import DDPMScheduler

    for params in (POINTS, DIGITS):
        t = make_target("diffusion", dict(params, steps=25))
        ddpm = DDPMScheduler.from_config(t.train_scheduler().config)
        ddpm.set_timesteps(25)
        ddim = t.sample_scheduler()
        assert ddpm.timesteps.tolist() == ddim.timesteps.tolist()
        x = 1.5 * torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
        for step in ddim.timesteps:
            eps = torch.tanh(x + step / 1000)
            z = torch.randn(x.shape, generator=torch.Generator().manual_seed(int(step)))
            a = ddpm.step(eps, step, x, generator=torch.Generator().manual_seed(int(step))).prev_sample
            b = ddim.step(eps, step, x, eta=1.0, use_clipped_model_output=True, variance_noise=z).prev_sample
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
            x = a


def _one_d_check(model, n_train, m=4000, seed=1):
    """(ok, message): the model's samples match the truth N(3, 0.5^2) in mean and variance within 4 Monte Carlo
    standard errors (of the n_train training points and the m samples)."""
    x = model.sample(m, 1.0, generator("samples", seed))[0, :, 0]
    se_mean = 0.5 * np.sqrt(1 / n_train + 1 / m)
    se_ratio = np.sqrt(2 / (n_train - 1) + 2 / (m - 1))
    ratio = x.var(ddof=1) / 0.25
    ok = abs(x.mean() - 3.0) < 4 * se_mean and abs(ratio - 1) < 4 * se_ratio
    return ok, f"mean {x.mean():.4f} (tol {4 * se_mean:.4f}), variance ratio {ratio:.4f} (tol {4 * se_ratio:.4f})"


@pytest.fixture(scope="module")
def one_d_model():
    params = {"data": "gmm", "truth": ONE_D, "train_steps": 1500, "batch_size": 256, "hidden": 64, "depth": 3,
              "lr": 2e-3, "ema": 0.995, "sampler": "ddpm", "steps": 1000, "device": "cpu", "eval_size": 500,
              "test_size": 100}
    return _fit(params, n=4000)


class ExactGaussianDenoiser:
    """The optimal noise prediction for standardised N(0, 1) data: E[eps | x_t] = sqrt(1 - abar_t) x_t."""

    def __init__(self, alphas_cumprod):
        self.abar = alphas_cumprod

    def to(self, device):
        return self

    def __call__(self, x, t):
        return (1 - self.abar[int(t)]).sqrt().to(x.dtype) * x


def _discretised_variance(sched, eta: float) -> float:
    """The closed form of the variance a sampler leaves of unit-Gaussian data with the exact denoiser: each step
    maps x_t to k x_t + sigma z, k = sqrt(abar_prev abar_t) + sqrt((1 - abar_prev - sigma^2)(1 - abar_t)) (DDIM's
    update with x0_hat = sqrt(abar_t) x_t, eps_hat = sqrt(1 - abar_t) x_t), so v <- k^2 v + sigma^2 from v = 1."""
    abar = sched.alphas_cumprod.double().numpy()
    stride = sched.config.num_train_timesteps // sched.num_inference_steps
    v = 1.0
    for t in sched.timesteps.tolist():
        b = abar[t]
        a = abar[t - stride] if t - stride >= 0 else float(sched.final_alpha_cumprod)
        sigma2 = eta ** 2 * (1 - a) / (1 - b) * (1 - b / a)
        k = np.sqrt(a * b) + np.sqrt(max(1 - a - sigma2, 0.0) * (1 - b))
        v = k * k * v + sigma2
    return v


def test_the_sampler_with_the_exact_denoiser_gives_the_truth_and_lam_scales_its_variance():
    """No training: with the exact denoiser of a Gaussian the samplers give the truth's mean and the variance
    their discretisation leaves (closed form above: 0.991 for 1000 DDPM steps, 0.985 for 250 DDIM, 0.93 for 50
    DDIM: a bias every generation inherits), within Monte Carlo error; lam = 0.5 halves the variance."""
    m = 200_000
    tol = 4 * np.sqrt(2 / m)
    for sampler, steps in (("ddpm", 1000), ("ddim", 250), ("ddim", 50)):
        t = make_target("diffusion", {"data": "gmm", "truth": ONE_D, "sampler": sampler, "steps": steps,
                                      "sample_batch": m})
        t.net_ = ExactGaussianDenoiser(t.train_scheduler().alphas_cumprod)
        t.shift_, t.scale_ = np.array([3.0]), np.array([0.5])
        x = t.sample(m, 1.0, generator("exact", sampler, steps))[0, :, 0]
        expected = _discretised_variance(t.sample_scheduler(), 1.0 if sampler == "ddpm" else 0.0)
        assert abs(x.mean() - 3) < 4 * 0.5 / np.sqrt(m)
        assert abs(x.var() / 0.25 - expected) < tol, (sampler, steps, x.var() / 0.25, expected)
        if sampler == "ddpm":
            assert 0.985 < expected < 0.995
            half = t.sample(m, 0.5, generator("exact", "half"))[0, :, 0]
            assert abs(half.var() / 0.25 - 0.5 * expected) < 0.5 * tol
        elif steps == 50:
            assert 0.9 < expected < 0.95  # coarse DDIM shrinks it visibly: a bug-free sampler is not enough


def test_point_model_matches_a_1d_gaussian_truth(one_d_model):
    t, real, model = one_d_model
    ok, msg = _one_d_check(model, 4000)
    assert ok, msg


def test_a_noise_schedule_bug_fails_the_1d_check(one_d_model, monkeypatch):
    """The check above has power: sampling with betas other than the ones trained on (beta_end 0.02 -> 0.03)
    misses the truth's variance."""
    t, real, model = one_d_model
    wrong = make_target("diffusion", dict(model.p, beta_end=0.03))
    monkeypatch.setattr(model, "sample_scheduler", wrong.sample_scheduler)
    ok, msg = _one_d_check(model, 4000)
    assert not ok, msg


def test_sampling_bias_lowers_the_temperature(one_d_model):
    t, real, model = one_d_model
    wide = model.sample(2000, 1.0, generator("s"))[0, :, 0]
    narrow = model.sample(2000, 0.5, generator("s"))[0, :, 0]
    assert narrow.std() < 0.85 * wide.std()
    assert abs(narrow.mean() - 3.0) < 0.1


def test_same_seed_same_model_and_samples_on_cpu():
    a, b, c = (_fit(POINTS, seed=s)[2] for s in (3, 3, 4))
    sa, sb, sc = (m.get_state() for m in (a, b, c))
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)
    assert not all(np.array_equal(sa[k], sc[k]) for k in sa)
    np.testing.assert_array_equal(a.sample(50, 1.0, generator("x")), b.sample(50, 1.0, generator("x")))


def test_images_train_sample_and_score(tmp_path):
    t, real, model = _fit(DIGITS, n=200)
    x = model.sample(20, 1.0, generator("s"))
    assert x.shape == (1, 20, 64) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    ref = t.reference(generator("ref"))
    metrics = model.evaluate(model.sample(40, 1.0, generator("e")), real, ref, model)
    assert set(metrics) == set(t.metrics) and all(np.isfinite(v) for v in metrics.values())
    # DDIM (eta 0) is deterministic given x_T: lam scales x_T only; DDPM draws every step
    assert make_target("diffusion", dict(DIGITS, sampler="ddpm")).p["sampler"] == "ddpm"
    # save/load: arrays only, the same samples; a state that does not fit the settings is named
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["state.npz", "target.json", "training_curve.csv"]
    again = Target.load(tmp_path / "m")
    np.testing.assert_array_equal(again.sample(8, 1.0, generator("z")), model.sample(8, 1.0, generator("z")))
    import json

    meta = json.loads((tmp_path / "m" / "target.json").read_text())
    meta["params"]["channels"] = [16, 32]
    (tmp_path / "m" / "target.json").write_text(json.dumps(meta))
    from ouroboros.io import IntermediateFileError

    with pytest.raises(IntermediateFileError, match="state.npz does not fit"):
        Target.load(tmp_path / "m")


def test_curation_hooks_and_the_correction():
    t, real, model = _fit(DIGITS, n=200)
    ref = t.reference(generator("ref"))
    x = real["test"][:, :30]
    noise = generator("noise").random((1, 30, 64)).astype(np.float32)
    assert model.loglik(x).shape == (1, 30)
    np.testing.assert_array_equal(model.loglik(x), model.loglik(x))  # fixed noise: a deterministic score
    assert model.judge_score(x, ref).mean() > model.judge_score(noise, ref).mean()
    dup = np.concatenate([x[:, :5], x[:, :5]], axis=1)
    assert model.duplicates(dup, {"tolerance": 0.0}, ref).tolist() == [[False] * 5 + [True] * 5]
    # the correction: gamma 0 changes nothing, gamma 1 lands on a real cluster centre of the judged class
    same = t.correct(noise, {"gamma": 0.0, "k": 3}, ref)
    np.testing.assert_array_equal(same, noise)
    centres, _, classes = t.correction_centres(3, ref)
    assert centres.shape == (30, 64) and sorted(set(classes.tolist())) == list(range(10))
    landed = t.correct(noise, {"gamma": 1.0, "k": 3}, ref)[0]
    assert all(np.isclose(((centres - row) ** 2).sum(1), 0, atol=1e-10).any() for row in landed)
    half = t.correct(noise, {"gamma": 0.5, "k": 3}, ref)[0]
    np.testing.assert_allclose(half, 0.5 * noise[0] + 0.5 * landed, atol=1e-6)
    # points: truth scorers apply, and the correction pulls towards the truth
    tp, realp, modelp = _fit(POINTS)
    refp = tp.reference(generator("refp"))
    far = realp["test"][:, :50] * 3
    moved = tp.correct(far, {"gamma": 0.5, "k": 4}, refp)
    assert tp.truth_logpdf(moved).mean() > tp.truth_logpdf(far).mean()
    assert {"truth_logpdf", "correct"} <= set(tp.curation_hooks) and "judge_score" not in tp.curation_hooks


def test_correct_curation_in_a_chain_keeps_every_item():
    chain = make_chain(target="diffusion", params=POINTS, n=60, replicates=1, regime="mix", rho=0.5,
                       curation={"selector": "correct", "gamma": 0.5, "k": 3, "scorer": "truth"})
    metrics, run = run_chain(chain, 1)
    assert metrics[1]["curation_kept_fraction"] == 1.0 and np.isfinite(metrics[1]["curation_score_kept"])


def test_bad_input_is_named_before_any_job(tmp_path):
    assert "params.channels" in make_target("diffusion", {"data": "mnist", "root": str(tmp_path),
                                                          "channels": [32, 32, 32, 32]}).check_experiment(100, 1)
    assert "norm_groups" in make_target("diffusion", {"channels": [12, 16]}).check_experiment(100, 1)
    assert "params.steps" in make_target("diffusion", {"steps": 2000}).check_experiment(100, 1)
    missing = make_target("diffusion", {"data": "mnist", "root": str(tmp_path)}).check_experiment(100, 1)
    assert "t10k-images-idx3-ubyte.gz" in missing and str(tmp_path) in missing
    assert "replicates: 1" in make_target("diffusion").check_experiment(100, 2)
    from ouroboros.config import ConfigError, Study

    def study(params, **exp):
        return {"study": "bad", "experiments": [dict({"target": "diffusion", "n": 50, "params": params}, **exp)]}

    for cfg, key in [(study({"data": "cifar"}), "data"), (study({"steps": 0}), "steps"),
                     (study(DIGITS, lam=0), "lam"),
                     (study(POINTS, curation={"selector": "top", "scorer": "judge"}), "judge")]:
        with pytest.raises(ConfigError, match=key):
            Study.from_config(cfg)


def test_point_metrics_are_fitted_to_eval_samples_when_a_chain_draws_few():
    """A chain with a large real share draws few samples (here 4 of 40); the mixture metrics are then fitted to
    a separate draw of eval_samples from the model (stream "evaluate", the chain's lam), not to the 4."""
    from ouroboros.chain import ChainRun

    params = dict(POINTS, eval_samples=300)
    t, real, model = _fit(params, n=200)
    ref = t.reference(generator("ref"))
    chain = make_chain(target="diffusion", params=params, n=40, replicates=1, regime="mix", rho=0.9, lam=0.8)
    run = ChainRun(chain, real, ref)
    few = model.sample(chain.job.n_candidates, 0.8, generator("few"))
    assert few.shape[1] == 4
    scored = run.evaluate(model, few, gen0=model, t=1)
    again = model.evaluate(model.sample(300, 0.8, chain.job.rng(1, "evaluate")), real, ref, model)
    assert scored == again and np.isfinite(scored["kl_truth_model"])
    assert np.isnan(run.evaluate(model, few, gen0=model)["kl_truth_model"])  # the 4 alone: too few to fit
    enough = model.sample(300, 0.8, generator("enough"))
    assert run.evaluate(model, enough, gen0=model, t=1) == model.evaluate(enough, real, ref, model)


@pytest.mark.parametrize("init", ["scratch", "previous"])
def test_points_give_the_same_numbers_per_job_and_in_blocks(tmp_path, init):
    chain = make_chain(target="diffusion", params=dict(POINTS, init=init, train_steps=40), n=40, replicates=1,
                       regime="mix", rho=0.25, generations=3,
                       curation={"selector": "correct", "gamma": 0.3, "k": 2} if init == "previous" else None)
    per_job, one_block = run_per_job(chain, tmp_path / "per-job", 3)
    assert sorted(per_job) == sorted(one_block)
    assert run_blocks(chain, tmp_path / "blocks", 3, 2) == one_block


@pytest.mark.skipif(not (SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="the MNIST test split is not in ../shared/data/mnist")
def test_mnist_unet_on_shared_data():
    params = dict(DIGITS, data="mnist", root=str(SHARED_DATA / "mnist"), channels=[8, 16, 16], train_steps=3)
    t, real, model = _fit(params, n=100)
    assert model.sample(3, 1.0, generator("m")).shape == (1, 3, 784)


@pytest.mark.e2e
def test_diffusion_studies_through_snakemake_per_job_and_in_blocks_tracked_to_mlflow(tmp_path, snakemake_run):
    """Images one generation per job (with the correction step), points in blocks (with a warm start): the
    metrics tables, sample grids, and logged models reloading from MLflow and sampling."""
    import os

    import mlflow
    import pandas as pd

    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    cfg = {"study": "diff-tiny", "seeds": [0], "generations": 1,
           "experiments": [
               {"name": "img", "target": "diffusion", "n": 100, "params": DIGITS,
                "regimes": [{"kind": "mix", "n_real": 100, "n_synthetic": 50}],
                "curation": {"selector": "correct", "gamma": 0.5, "k": 2}},
               {"name": "pts", "target": "diffusion", "n": 80, "block": 2, "params": dict(POINTS, init="previous"),
                "regimes": [{"kind": "mix", "rho": 0.5, "fresh": True}]}]}
    snakemake_run(tmp_path, cfg, "--cores", "2")
    results = tmp_path / "results/diff-tiny"
    table = pd.read_csv(results / "metrics.csv")
    img = make_target("diffusion", DIGITS).metrics
    pts = make_target("diffusion", POINTS).metrics
    assert set(table[table.experiment == "pts"]["metric"]) == set(pts) | {"train_items"}
    assert set(table[table.experiment == "img"]["metric"]) == set(img) | {"train_items", "curation_kept_fraction"}
    assert table["value"].notna().all() and len(table[table.experiment == "pts"]) == 2 * (len(pts) + 1)
    assert (table[table.metric == "curation_kept_fraction"]["value"] == 1).all()
    assert (results / "plots/samples/img/mix-nr100-ns50/seed0.png").stat().st_size > 2000
    assert (results / "img/mix-nr100-ns50/seed0/gen1/model/state.npz").is_file()
    uri = f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    from ouroboros.tracking import experiment_name

    exp = client.get_experiment_by_name(experiment_name("diff-tiny"))
    models = {m.name: m.model_id for m in client.search_logged_models(experiment_ids=[exp.experiment_id])}
    assert {"gen1-s0-mix-nr100-ns50-img", "gen1-s0-mix-rho0_5-fresh-pts"} <= set(models)
    drawn = mlflow.pyfunc.load_model(f"models:/{models['gen1-s0-mix-nr100-ns50-img']}").predict(
        pd.DataFrame({"n": [3], "lam": [1.0], "seed": [0]}))
    assert drawn.shape == (3, 65) and drawn.iloc[:, 1:].to_numpy().max() <= 1
    points = mlflow.pyfunc.load_model(f"models:/{models['gen1-s0-mix-rho0_5-fresh-pts']}").predict(
        pd.DataFrame({"n": [4], "lam": [0.5], "seed": [1]}))
    assert list(points.columns) == ["replicate", "x0", "x1"] and len(points) == 4
