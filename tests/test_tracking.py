"""MLflow tracking: what lands in the backend, and how failures and reruns behave."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_snakemake, snakemake_log
from ouroboros import io
from ouroboros.tracking import TrackingError, check_backend, experiment_name, metric_data, model_name, resolve_uri

pytestmark = pytest.mark.e2e
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

GMM = {"components": 2, "truth": "blob", "eval_size": 300, "test_size": 100}
TRACKED = {
    "study": "tracked",
    "seeds": [0],
    "generations": 4,
    "experiments": [
        {"name": "gauss", "target": "gaussian", "n": 20, "replicates": 5, "block": 3,
         "regimes": ["replace", {"kind": "mix", "rho": 0.1}]},
        {"name": "gmm", "target": "gmm", "n": 60, "generations": 2, "block": 1, "regimes": ["accumulate"], "params": GMM},
    ],
}
# tracked generations per parent run: the GMM runs one generation per job, so its generation 0 is shared
# by its regimes and tracked once per seed under its own parent ("gmm/seed0"); each regime's chain has a run of
# its own for it too (pointing at the shared model), so its lineage starts at generation 0
CHAINS = {"gauss/replace/seed0": range(5), "gauss/mix-rho0.1/seed0": range(5), "gmm/accumulate/seed0": range(3),
          "gmm/seed0": range(1)}
RUNS = sum(len(g) for g in CHAINS.values())
MODELS = RUNS - 1  # the chain's run of the shared generation 0 logs no model of its own


def _client(uri):
    from mlflow import MlflowClient

    return MlflowClient(uri)


def _runs(client, exp_id, kind):
    return client.search_runs([exp_id], f"tags.`ouroboros.kind` = '{kind}'", max_results=1000)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    work = tmp_path_factory.mktemp("tracked")
    run_snakemake(work, TRACKED, "--cores", "2")
    uri = f"sqlite:///{work / 'results' / 'mlflow.db'}"
    return work, uri


def test_run_tree_metrics_and_lineage(tracked):
    work, uri = tracked
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment_name("tracked"))
    assert exp is not None
    parents = {r.data.tags["ouroboros.chain"]: r for r in _runs(client, exp.experiment_id, "chain")}
    assert set(parents) == set(CHAINS)
    children = _runs(client, exp.experiment_id, "generation")
    assert len(children) == RUNS
    by_key = {}
    for r in children:
        chain = r.data.tags["ouroboros.chain"]
        assert r.data.tags["mlflow.parentRunId"] == parents[chain].info.run_id
        for tag in ("study", "target", "regime", "seed", "generation", "config_hash", "host", "device",
                    "mlflow.source.git.commit", "mlflow.user", "mlflow.source.name"):
            assert r.data.tags.get(tag), tag
        assert r.data.params["n"] and r.data.params["lam"] == "1.0" and r.data.params["generation"] == r.data.tags["generation"]
        by_key[(chain, int(r.data.tags["generation"]))] = r
    # metric histories: steps = generations, on the parent too
    hist = client.get_metric_history(parents["gauss/replace/seed0"].info.run_id, "var_ratio_mean")
    assert sorted({m.step for m in hist}) == [0, 1, 2, 3, 4]
    table = pd.read_csv(work / "results/tracked/metrics.csv")
    want = table[(table.regime == "replace") & (table.metric == "var_ratio_mean")].set_index("generation")["value"]
    assert all(m.value == pytest.approx(want[m.step]) for m in hist)
    child_hist = client.get_metric_history(by_key[("gmm/accumulate/seed0", 2)].info.run_id, "kl_truth_model")
    assert [m.step for m in child_hist] == [2]
    # datasets: training digest from the manifest, evaluation set present
    run = client.get_run(by_key[("gmm/accumulate/seed0", 2)].info.run_id)
    contexts = {next(t.value for t in d.tags if t.key == "mlflow.data.context"): d.dataset for d in run.inputs.dataset_inputs}
    manifest = io.load_json(work / "results/tracked/gmm/accumulate/seed0/gen2/trainset.json")
    assert contexts["training"].digest == manifest["digest"]
    assert "trainset.json" in contexts["training"].source
    assert "real.npz" in contexts["evaluation"].source
    # the shared generation 0's metrics are on the chain's parent too, so its curves start at generation 0
    hist = client.get_metric_history(parents["gmm/accumulate/seed0"].info.run_id, "kl_truth_model")
    assert sorted(m.step for m in hist) == [0, 1, 2]
    # lineage: gen g's model input is gen g-1's logged model (gen 1 of the GMM: the shared gen 0's)
    model_of = {}
    for key, rec in by_key.items():
        models = client.search_logged_models(experiment_ids=[exp.experiment_id],
                                             filter_string=f"source_run_id = '{rec.info.run_id}'")
        if key == ("gmm/accumulate/seed0", 0):  # the chain's view of the shared generation 0
            assert not models and rec.data.tags["ouroboros.shared_run_id"] == by_key[("gmm/seed0", 0)].info.run_id
            continue
        assert len(models) == 1
        model_of[key] = models[0].model_id
    link = by_key[("gmm/accumulate/seed0", 0)]
    assert [m.model_id for m in client.get_run(link.info.run_id).inputs.model_inputs] == [model_of[("gmm/seed0", 0)]]
    assert parents["gmm/accumulate/seed0"].data.tags["ouroboros.gen0_model_id"] == model_of[("gmm/seed0", 0)]
    assert parents["gmm/accumulate/seed0"].data.tags["ouroboros.gen0_run_id"] == link.info.run_id
    for (chain, g), rec in by_key.items():
        inputs = [m.model_id for m in client.get_run(rec.info.run_id).inputs.model_inputs]
        if (chain, g) == ("gmm/accumulate/seed0", 0):
            continue
        if g == 0:
            assert not inputs
        else:
            previous = (chain, g - 1) if (chain, g - 1) in model_of else ("gmm/seed0", 0)
            assert inputs == [model_of[previous]], (chain, g)
    assert len(_runs(client, exp.experiment_id, "study")) == 1


def test_models_carry_their_metrics_and_the_experiment_its_kind(tracked):
    work, uri = tracked
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment_name("tracked"))
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert exp.tags["mlflow.note.content"]
    models = client.search_logged_models(experiment_ids=[exp.experiment_id], max_results=1000)
    assert len(models) == MODELS
    table = pd.read_csv(work / "results/tracked/metrics.csv")
    for m in models:
        assert m.name.startswith(f"gen{m.tags['generation']}-"), m.name
        assert m.metrics, f"{m.name} has no metrics"
        g = int(m.tags["generation"])
        assert {x.step for x in m.metrics} == {g}
        from ouroboros.targets import target_class

        ends = {"real": "real-test", "samples": f"gen{g}/samples", "train": f"gen{g}/train", "model": None}
        for x in m.metrics:  # each metric against the data it was computed on (none: the model against the truth)
            want_end = ends[metric_data(target_class(m.tags["target"]), x.key)]
            assert (x.dataset_name is None) if want_end is None else x.dataset_name.endswith(want_end), (m.name, x)
        assert any(x.dataset_name and x.dataset_name.endswith(f"gen{g}/train") for x in m.metrics)  # train_items
        assert m.tags["mlflow.source.name"] == "snakemake rule track_group"
        assert m.tags["training_dataset"].endswith(f"gen{g}/train") and m.tags["training_dataset_digest"]
        assert m.params["generation"] == str(g)
        chain = m.tags["ouroboros.chain"]
        want = table[(table.experiment == m.tags["experiment"]) & (table.generation == g)]
        if chain.count("/") == 2:  # a chain's own generation (else the shared generation 0: any regime's rows)
            want = want[want.regime == chain.split("/")[1]]
        assert len(want)
        got = {x.key: x.value for x in m.metrics}
        for row in want.itertuples():
            assert got[row.metric] == pytest.approx(row.value), (m.name, row.metric)
    # no duplicated tags on runs: the ouroboros.* copies of study, config hash and generation are gone
    run = _runs(client, exp.experiment_id, "generation")[0]
    assert not {"ouroboros.study", "ouroboros.config_hash", "ouroboros.generation", "git_commit"} & set(run.data.tags)
    assert run.info.run_name.startswith(f"gen{run.data.tags['generation']} s0 ")


def test_job_run_time_and_memory_are_metrics(tracked):
    work, uri = tracked
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment_name("tracked"))
    parents = {r.data.tags["ouroboros.chain"]: r for r in _runs(client, exp.experiment_id, "chain")}
    hist = client.get_metric_history(parents["gauss/replace/seed0"].info.run_id, "job_seconds_block")
    assert sorted(m.step for m in hist) == [2, 4] and all(m.value > 0 for m in hist)  # blocks 0-2 and 3-4
    assert client.get_metric_history(parents["gauss/replace/seed0"].info.run_id, "job_max_rss_mb_block")[0].value > 10
    runs = {(r.data.tags["ouroboros.chain"], r.data.tags["generation"]): r for r in _runs(client, exp.experiment_id, "generation")}
    for key in (("gmm/accumulate/seed0", "2"), ("gmm/seed0", "0")):
        m = runs[key].data.metrics
        for rule in ("train", "generate", "evaluate"):
            assert m[f"job_seconds_{rule}"] > 0 and m[f"job_max_rss_mb_{rule}"] > 10, (key, rule)
        assert "job_seconds_train" not in {x.key for x in client.search_logged_models(
            experiment_ids=[exp.experiment_id], filter_string=f"source_run_id = '{runs[key].info.run_id}'")[0].metrics}


def test_job_metrics_read_snakemake_benchmark_files(tmp_path):
    from ouroboros.tracking import job_metrics

    f = tmp_path / "train.benchmark.tsv"
    f.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                 "3.2101\t0:00:03\t250.12\t900.1\t200.0\t210.0\t0.1\t0.2\t95.0\t3.01\n")
    assert job_metrics({"train": f}) == {"job_seconds_train": 3.2101, "job_max_rss_mb_train": 250.12}
    f.write_text("s\th:m:s\tmax_rss\n0.5\t0:00:00\tNA\n")
    assert job_metrics({"train": f}) == {"job_seconds_train": 0.5}
    assert job_metrics({"train": tmp_path / "missing.tsv"}) == {}
    # the job's own exact peak memory, written beside its log by run_job, wins over Snakemake's sampled one
    from ouroboros.logs import usage_path, write_usage

    write_usage(tmp_path / "train.log", 0.4)
    assert usage_path(tmp_path / "train.log") == tmp_path / "train.usage.json"
    got = job_metrics({"train": f})
    assert got["job_seconds_train"] == 0.5 and got["job_max_rss_mb_train"] > 10


def test_models_load_from_models_uri_and_sample(tracked):
    import mlflow

    work, uri = tracked
    mlflow.set_tracking_uri(uri)
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment_name("tracked"))
    names = {m.name: m for m in client.search_logged_models(experiment_ids=[exp.experiment_id])}
    assert model_name("gen3-s0-mix-rho0.1-gauss") in names
    gmm = mlflow.sklearn.load_model(f"models:/{names['gen2-s0-accumulate-gmm'].model_id}")
    x, _ = gmm.sample(50)
    assert x.shape == (50, 2)
    state = io.load_npz(work / "results/tracked/gmm/accumulate/seed0/gen2/model/state.npz")
    np.testing.assert_allclose(gmm.means_, state["means"][0])
    logged = names["gen2-s0-accumulate-gmm"]  # saved with mlflow.sklearn.save_model, logged without a run
    assert logged.params["generation"] == "2" and logged.tags["training_dataset"]
    assert [o.model_id for o in client.get_run(logged.source_run_id).outputs.model_outputs] == [logged.model_id]
    arts = client.list_artifacts(logged.source_run_id, "gen2-s0-accumulate-gmm-all-replicates")
    assert "state.npz" in {Path(a.path).name for a in arts}
    # every chain's generation 0 by the chain's name, also where its regimes share it
    from ouroboros.tracking import logged_models

    by_name = logged_models("tracked", uri)
    assert by_name["gen0-s0-accumulate-gmm"] == by_name["gen0-s0-shared-gmm"] == f"models:/{names['gen0-s0-shared-gmm'].model_id}"
    assert by_name["gen0-s0-replace-gauss"] == f"models:/{names['gen0-s0-replace-gauss'].model_id}"
    gauss = mlflow.pyfunc.load_model(f"models:/{names['gen4-s0-replace-gauss'].model_id}")
    out = gauss.predict(pd.DataFrame({"n": [7], "lam": [0.5], "seed": [1]}))
    assert out.shape == (5 * 7, 2) and list(out.columns) == ["replicate", "x0"]


def test_one_tracking_job_per_group_of_chains(tracked):
    """Block-mode chains of one target share a tracking job; a one-generation-per-job experiment has one per
    seed (its shared generation 0 first); each writes one receipt naming its chains and their runs."""
    work, _ = tracked
    folder = work / "results/tracked/tracking"
    assert sorted(p.name for p in folder.glob("*.json")) == ["gaussian-chains0.json", "gmm-seed0.json",
                                                             "study.json"]
    gauss = io.load_json(folder / "gaussian-chains0.json")
    assert set(gauss["chains"]) == {"gauss/replace/seed0", "gauss/mix-rho0.1/seed0"}
    assert [r["generation"] for r in gauss["chains"]["gauss/replace/seed0"]["runs"]] == [0, 1, 2, 3, 4]
    gmm = io.load_json(folder / "gmm-seed0.json")
    assert set(gmm["chains"]) == {"gmm/seed0", "gmm/accumulate/seed0"}
    assert gmm["chains"]["gmm/accumulate/seed0"]["last_model_id"] == gmm["chains"]["gmm/accumulate/seed0"]["runs"][-1]["model_id"]
    assert sorted(p.name for p in (work / "results/tracked/logs/tracking").glob("*.log")) == [
        "gaussian-chains0.log", "gmm-seed0.log", "study.log"]


def test_forced_rerun_leaves_no_duplicates(tracked):
    work, uri = tracked
    run_snakemake(work, TRACKED, "--cores", "2", "--forcerun", "track_group")
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment_name("tracked"))
    children = _runs(client, exp.experiment_id, "generation")
    keys = [(r.data.tags["ouroboros.chain"], r.data.tags["generation"]) for r in children]
    assert len(keys) == len(set(keys)) == RUNS
    assert len(_runs(client, exp.experiment_id, "chain")) == len(CHAINS)
    names = [m.name for m in client.search_logged_models(experiment_ids=[exp.experiment_id])]
    assert len(names) == len(set(names)) == MODELS


def test_parallel_tracking_against_sqlite_has_no_lock_failures(tmp_path):
    """Six tracking jobs at once on SQLite; a parent run of a chain longer than tracking.parent_points gets
    every k-th generation and each block's last (here k = 3: generations 0, 3 and the block ends 2, 5)."""
    cfg = {"study": "parallel", "seeds": list(range(6)), "generations": 5,
           "tracking": {"chains_per_job": 1, "parent_points": 2},
           "experiments": [{"target": "gaussian", "n": 10, "replicates": 2, "block": 3, "regimes": ["replace"]}]}
    proc = run_snakemake(tmp_path, cfg, "--cores", "8")
    logs = "".join(p.read_text() for p in (tmp_path / "results/parallel/logs").rglob("*.log"))
    assert "database is locked" not in logs + proc.stderr
    client = _client(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment_name("parallel"))
    assert len(_runs(client, exp.experiment_id, "generation")) == 6 * 6
    for parent in _runs(client, exp.experiment_id, "chain"):
        assert sorted(m.step for m in client.get_metric_history(parent.info.run_id, "std_mean")) == [0, 2, 3, 5]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server_port():
    return _free_port()


def _start_server(port, root: Path):
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{root / 'server.db'}", "--artifacts-destination",
                             str(root / "server-artifacts"), "--workers", "1"],
                            stdout=open(root / "server.log", "w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")


def test_unreachable_server_then_real_server(tmp_path, server_port):
    uri = f"http://127.0.0.1:{server_port}"
    cfg = dict(TRACKED, study="remote", tracking={"uri": uri})
    proc = run_snakemake(tmp_path, cfg, "--cores", "2", check=False)  # the plain command: the profile keeps going
    assert proc.returncode != 0
    assert f"MLflow tracking server {uri} is unreachable" in proc.stderr
    # said once: the tracking jobs after the first (and its retry) stop at once, naming what the first found
    assert "not tried: earlier in this run, MLflow tracking server" in proc.stderr
    # every compute output is there
    results = tmp_path / "results/remote"
    assert (results / "metrics.csv").is_file()
    assert (results / "gauss/replace/seed0/gens3-4/models.npz").is_file()
    assert (results / "gmm/accumulate/seed0/gen2/model/state.npz").is_file()
    assert not list((results / "tracking").glob("*.json"))  # no receipt: nothing was logged
    before = (results / "metrics.csv").stat().st_mtime_ns
    server_root = tmp_path / "server"
    server_root.mkdir()
    server = _start_server(server_port, server_root)
    try:
        run_snakemake(tmp_path, cfg, "--cores", "2")
        out = snakemake_log(tmp_path)
        assert "rule track_group:" in out and "rule block:" not in out and "rule train:" not in out  # only tracking
        assert (results / "metrics.csv").stat().st_mtime_ns == before
        client = _client(uri)
        exp = client.get_experiment_by_name(experiment_name("remote"))
        assert len(_runs(client, exp.experiment_id, "generation")) == RUNS
        import mlflow

        mlflow.set_tracking_uri(uri)
        names = {m.name: m.model_id for m in client.search_logged_models(experiment_ids=[exp.experiment_id])}
        assert mlflow.sklearn.load_model(f"models:/{names['gen1-s0-accumulate-gmm']}").sample(3)[0].shape == (3, 2)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_uri_resolution_and_checks(tmp_path):
    assert resolve_uri("", tmp_path) == f"sqlite:///{tmp_path.resolve() / 'results/mlflow.db'}"
    assert resolve_uri("sqlite:///db/x.db", tmp_path) == f"sqlite:///{tmp_path.resolve() / 'db/x.db'}"
    assert resolve_uri("http://host:5000/", tmp_path) == "http://host:5000"
    with pytest.raises(TrackingError, match="file store"):
        resolve_uri("file:///tmp/mlruns", tmp_path)
    with pytest.raises(TrackingError, match="unreachable"):
        check_backend(f"http://127.0.0.1:{_free_port()}", timeout=1)


def test_a_server_that_hangs_holds_one_tracking_job_once_and_stops_no_compute(tmp_path, monkeypatch):
    """A server that answers its health check but never answers the API: the first tracking job gives up after
    MLflow's request timeout (and its retries), the ones after it stop at once saying so; every compute job
    runs."""
    import http.server
    import threading

    class Hanging(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/health"):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"OK")
            else:
                time.sleep(30)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hanging)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    cfg = dict(TRACKED, study="hang", tracking={"uri": uri})
    try:
        proc = run_snakemake(tmp_path, cfg, "--cores", "2", check=False)
    finally:
        server.shutdown()
    assert proc.returncode != 0
    assert (tmp_path / "results/hang/metrics.csv").is_file()
    assert "not tried: earlier in this run" in proc.stderr, proc.stderr[-3000:]
    # only the jobs already waiting on the server when the first gave up waited (2 cores: at most 2); every
    # other attempt, their retries included, stopped at once (without the note every attempt waits, 60 s x 3)
    waited = proc.stderr.count("TrackingError: tracking to")
    stopped = proc.stderr.count("TrackingError: not tried: earlier in this run")
    assert 1 <= waited <= 2 and stopped >= waited, (waited, stopped)
