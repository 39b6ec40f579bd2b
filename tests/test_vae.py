"""The VAE target: training, determinism, sampling bias, data loading, metrics."""
import numpy as np
import pytest

from conftest import SHARED_DATA, assert_shared_gen0, make_chain, run_chain
from ouroboros import images
from ouroboros.seeding import generator
from ouroboros.chain import METRICS as ENGINE_METRICS
from ouroboros.targets import make_target
from ouroboros.targets.base import Target

TINY = {"epochs": 2, "judge_epochs": 2, "iwae_k": 4, "batch_size": 64, "device": "cpu"}


def _train(n=300, seed=0, **params):
    t = make_target("vae", dict(TINY, **params))
    real = t.real_data(generator("real", seed), n, 1)
    return t, real, t.clone().fit(real["train"], generator("fit", seed))


def test_training_lowers_the_loss(caplog):
    caplog.set_level("INFO", logger="ouroboros")
    _train(epochs=6)
    losses = [float(r.getMessage().split("loss ")[1].split()[0]) for r in caplog.records if "loss" in r.getMessage()]
    assert len(losses) == 6
    assert losses[-1] < losses[0] - 5


def test_same_seed_same_weights_on_cpu():
    a = _train(seed=3)[2].net_.state_dict()
    b = _train(seed=3)[2].net_.state_dict()
    c = _train(seed=4)[2].net_.state_dict()
    assert all((a[k] == b[k]).all() for k in a)
    assert not all((a[k] == c[k]).all() for k in a)


def test_sampling_bias_shrinks_the_spread():
    t, real, model = _train(epochs=8, decoder="gaussian", decoder_std=0.2)
    wide = model.sample(500, 1.0, generator("s"))[0]
    narrow = model.sample(500, 0.1, generator("s"))[0]
    assert narrow.std(axis=0).mean() < 0.8 * wide.std(axis=0).mean()
    assert wide.shape == (500, 64) and 0 <= wide.min() and wide.max() <= 1


def test_save_and_load_with_weights_only(tmp_path):
    t, real, model = _train()
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.pt").is_file() and (tmp_path / "m" / "target.json").is_file()
    again = Target.load(tmp_path / "m")
    x = real["test"][0][:20]
    np.testing.assert_array_equal(again.encode_means(x), model.encode_means(x))
    (tmp_path / "m" / "model.pt").write_bytes(b"not a model")
    from ouroboros.io import IntermediateFileError

    with pytest.raises(IntermediateFileError, match="model.pt"):
        Target.load(tmp_path / "m")


def test_metrics_of_a_short_chain():
    chain = make_chain(target="vae", params=dict(TINY, epochs=3), n=400, replicates=1)
    metrics, _ = run_chain(chain, 1)
    assert set(metrics[0]) == set(make_target("vae").metrics) | set(ENGINE_METRICS)
    assert all(np.isfinite(v) for m in metrics for v in m.values())
    assert 0 <= metrics[1]["precision"] <= 1 and 0 <= metrics[1]["recall"] <= 1


def test_judge_learns_the_digits():
    t = make_target("vae", dict(TINY, judge_epochs=10))
    ref = t.reference(generator("ref"))
    assert float(ref["judge_accuracy"]) > 0.85
    assert ref["real_feats"].shape == (359, 64)


def test_vae_needs_one_replicate_and_enough_real_images():
    t = make_target("vae")
    assert "replicates: 1" in t.check_experiment(100, 2)
    assert "exceeds" in t.check_experiment(5000, 1)


def test_missing_mnist_files_are_named(tmp_path):
    t = make_target("vae", {"data": "mnist", "root": str(tmp_path)})
    msg = t.check_experiment(100, 1)
    assert "t10k-images-idx3-ubyte.gz" in msg and str(tmp_path) in msg


@pytest.mark.skipif(not (SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="the MNIST test split is not in ../shared/data/mnist")
def test_mnist_loader_on_shared_data():
    x, y = images.load("mnist", str(SHARED_DATA / "mnist"), "test")
    assert x.shape == (10000, 784) and x.dtype == np.float32
    assert 0.0 == x.min() and x.max() == 1.0
    assert np.bincount(y).tolist()[:3] == [980, 1135, 1032]
    t = make_target("vae", {"data": "mnist", "root": str(SHARED_DATA / "mnist")})
    real = t.real_data(generator("r"), 500, 1)
    assert real["train"].shape == (1, 500, 784) and real["test"].shape == (1, 2000, 784)


@pytest.mark.e2e
def test_tiny_vae_study_with_two_regimes_tracked_to_mlflow(tmp_path, snakemake_run):
    import os

    import mlflow
    import pandas as pd
    import torch

    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    cfg = {"study": "vae-tiny", "seeds": [0], "generations": 2,
           "experiments": [{"name": "vae", "target": "vae", "n": 200, "regimes": ["replace", {"kind": "mix", "rho": 0.2}],
                            "params": dict(TINY, decoder="gaussian", decoder_std=0.2)}]}
    snakemake_run(tmp_path, cfg, "--cores", "2")
    results = tmp_path / "results/vae-tiny"
    table = pd.read_csv(results / "metrics.csv")
    assert set(table["metric"]) == set(make_target("vae").metrics) | set(ENGINE_METRICS)
    assert len(table) == 2 * 3 * (len(make_target("vae").metrics) + len(ENGINE_METRICS))
    for regime in ("replace", "mix-rho0.2"):
        assert (results / f"plots/samples/vae/{regime}/seed0.png").stat().st_size > 2000
        assert (results / f"vae/{regime}/seed0/gen2/model/model.pt").is_file()
        assert (results / f"vae/{regime}/seed0/gen2/samples/grid.png").is_file()
    log_text = (results / "logs/vae/replace/seed0/gen1/train.log").read_text()
    assert "epoch 2/2 loss" in log_text
    uri = f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    from ouroboros.tracking import experiment_name

    exp = client.get_experiment_by_name(experiment_name("vae-tiny"))
    runs = client.search_runs([exp.experiment_id], "tags.`ouroboros.kind` = 'generation'")
    assert len(runs) == 5 + 2  # generation 0 once, shared by both regimes, and each chain's run of it
    assert_shared_gen0(results, client, exp.experiment_id, "vae", ["replace", "mix-rho0.2"], runs)
    run = next(r for r in runs if r.data.tags["ouroboros.chain"] == "vae/replace/seed0" and r.data.tags["generation"] == "2")
    assert "samples/grid.png" in [a.path for a in client.list_artifacts(run.info.run_id, "samples")]
    # the training curve (nats per image, one point per epoch) and the jobs' run time and memory
    curve = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in curve] == list(range(1, TINY["epochs"] + 1))
    assert curve[-1].value < curve[0].value
    assert run.data.metrics["job_seconds_train"] > 0 and run.data.metrics["job_max_rss_mb_evaluate"] > 10
    # the study run keeps the plots' paths: the two regimes' sample grids do not overwrite each other
    study_run = client.search_runs([exp.experiment_id], "tags.`ouroboros.kind` = 'study'")[0]
    grids = [a.path for a in client.list_artifacts(study_run.info.run_id, "plots/samples/vae")]
    assert sorted(grids) == ["plots/samples/vae/mix-rho0.2", "plots/samples/vae/replace"]
    top = {a.path for a in client.list_artifacts(study_run.info.run_id)}
    assert {"metrics.csv", "settings.csv", "summary.csv", "plots"} <= top
    models = {m.name: m.model_id for m in client.search_logged_models(experiment_ids=[exp.experiment_id])}
    decoder = mlflow.pytorch.load_model(f"models:/{models['gen2-s0-replace-vae']}")
    with torch.no_grad():
        images = decoder(torch.randn(4, 20))
    assert tuple(images.shape) == (4, 64) and float(images.min()) >= 0 and float(images.max()) <= 1


def test_curation_hooks_judge_loglik_and_dedup_in_feature_space(tmp_path):
    t, real, model = _train(epochs=4, decoder="gaussian", decoder_std=0.2)
    ref = t.reference(generator("ref"))
    x = real["test"][:, :40]
    conf = model.judge_score(x, ref)
    assert conf.shape == (1, 40) and np.all((conf > 0.1) & (conf <= 1))
    noise = generator("noise").random((1, 40, 64)).astype(np.float32)
    assert conf.mean() > model.judge_score(noise, ref).mean()  # real digits convince the judge more than noise
    ll = model.loglik(x)
    assert ll.shape == (1, 40) and ll.mean() > model.loglik(noise).mean()
    np.testing.assert_allclose(ll, model.loglik(x))  # fixed evaluation noise: a deterministic score
    dup = np.concatenate([x[:, :5], x[:, :5], x[:, 5:10]], axis=1)
    flags = model.duplicates(dup, {"tolerance": 0.0}, ref)
    assert flags.tolist() == [[False] * 5 + [True] * 5 + [False] * 5]
    near = dup + 1e-4 * generator("jitter").standard_normal(dup.shape).astype(np.float32)
    assert model.duplicates(near, {"tolerance": 0.05}, ref)[0, 5:10].all()
    # the judge scorer in a chain: top half by judge confidence
    chain = make_chain(target="vae", params=TINY, n=200, replicates=1,
                       curation={"selector": "top", "q": 0.5, "scorer": "judge"})
    metrics, _ = run_chain(chain, 1)
    assert metrics[1]["curation_kept_fraction"] == 0.5
    assert metrics[1]["curation_score_kept"] > metrics[1]["curation_score_all"]
