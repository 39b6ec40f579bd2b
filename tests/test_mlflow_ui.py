"""The MLflow UI as a researcher sees it: a tiny tracked study, the UI started with the command the run prints,
and its pages loaded in headless Chromium (Debian ``chromium``; .ci/run installs it where it can).  The pages
must open in the model-training view (not MLflow 3's GenAI "Agent versions" / "Evaluations"), list the runs
and models by names that lead with generation, seed and regime, start every chain's lineage at generation 0,
and link a model to the rule that logged it and to the data sets its metrics were computed on."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import run_snakemake

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

STUDY = {
    "study": "uitest",
    "seeds": [0],
    "generations": 2,
    "experiments": [
        {"name": "gauss", "target": "gaussian", "n": 20, "replicates": 3, "regimes": ["replace", {"kind": "mix", "rho": 0.1}]},
        {"name": "gmm", "target": "gmm", "n": 60, "block": 1, "regimes": ["accumulate"],
         "params": {"components": 2, "truth": "blob", "eval_size": 300, "test_size": 100}},
    ],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dom(url: str) -> str:
    """The page's DOM after its scripts ran, in a fresh headless Chromium profile (nothing remembered)."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                               "--disable-component-update", "--disable-sync", "--no-first-run",
                               f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--dump-dom", url],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium chromium-driver)")
    work = tmp_path_factory.mktemp("ui")
    proc = run_snakemake(work, STUDY, "--cores", "2")
    out = proc.stdout + proc.stderr
    # start the UI with the command the run printed, and open the address it printed
    m = re.search(r"MLflow: (\S+ ui --backend-store-uri \S+) --port 5000, then open (\S+)", out)
    assert m, out[-3000:]
    port = _free_port()
    server = subprocess.Popen(m.group(1).split() + ["--port", str(port)], cwd=work, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True,
                              env=dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true"))
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"mlflow ui did not start: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.5)
        yield {"base": f"http://127.0.0.1:{port}", "printed": m.group(2).replace(":5000", f":{port}"),
               "uri": m.group(1).split("--backend-store-uri ")[1]}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _ids(uri):
    from mlflow import MlflowClient

    from ouroboros.tracking import experiment_name

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment_name("uitest"))
    chains = {r.info.run_name: r.info.run_id for r in client.search_runs(
        [exp.experiment_id], "tags.`ouroboros.kind` = 'chain'")}
    models = {m.name: m.model_id for m in client.search_logged_models(experiment_ids=[exp.experiment_id])}
    return exp.experiment_id, chains, models


def test_the_printed_address_opens_the_study_in_the_model_training_view(ui):
    page = _dom(ui["printed"])
    assert "ouroboros-uitest" in page and "Default" in page  # two experiments, not to be confused
    # the sidebar of the model-training view links the model registry; the GenAI view's, prompts instead
    assert 'href="#/models"' in page and 'href="#/prompts"' not in page
    assert 'href="#/prompts"' in _dom(f"{ui['base']}/#/experiments")
    exp_id, _, _ = _ids(ui["uri"])
    models = _dom(f"{ui['base']}/#/experiments/{exp_id}/models?workflowType=machine_learning")
    assert "Agent versions" not in models and ">Models<" in models
    for name in ("gen2-s0-accumulate-gmm", "gen0-s0-shared-gmm", "gen2-s0-mix-rho0_1-gauss"):
        assert name in models, name
    # the check itself: without the address's view the same page is the GenAI one
    assert "Agent versions" in _dom(f"{ui['base']}/#/experiments/{exp_id}/models")


def test_runs_read_seed_and_regime_first_and_lineage_starts_at_generation_0(ui):
    exp_id, chains, _ = _ids(ui["uri"])
    assert set(chains) == {"s0 replace gauss", "s0 mix-rho0.1 gauss", "s0 accumulate gmm", "s0 shared gmm"}
    runs = _dom(f"{ui['base']}/#/experiments/{exp_id}/runs?workflowType=machine_learning")
    assert all(name in runs for name in chains)
    parent = _dom(f"{ui['base']}/#/experiments/{exp_id}/runs/{chains['s0 accumulate gmm']}?workflowType=machine_learning")
    assert "Evaluations" not in parent and ">Runs<" in parent
    for g in (0, 1, 2):  # the chain's own children, generation 0 (the shared one) included
        assert f"gen{g} s0 accumulate gmm" in parent, g


def test_a_model_page_names_its_rule_and_its_data(ui):
    exp_id, _, models = _ids(ui["uri"])
    page = _dom(f"{ui['base']}/#/experiments/{exp_id}/models/{models['gen2-s0-accumulate-gmm']}"
                "?workflowType=machine_learning")
    assert "snakemake rule track_group" in page and "track_group.py" not in page  # not a deleted temporary script
    assert "Datasets used" in page
    assert "gmm/seed0/real-test" in page  # nll_real, on the real test set
    assert "gmm/accumulate/seed0/gen2/train" in page  # train_items, on the training set
