"""The MLflow UI as a researcher sees it: a tiny tracked study, the UI started with the command the run prints,
and its pages loaded in headless Chromium (Debian ``chromium``; .ci/run installs it where it can).  The pages
must open in the model-training view (not MLflow 3's GenAI "Overview" / "Agent versions" / "Evaluations"), also
where a user clicks the study's name (driven by Selenium through Debian's ``chromium-driver``), list the runs and
models by names that lead with generation, seed and regime, start every chain's lineage at generation 0, and link
a model to the rule that logged it and to the data sets its metrics were computed on."""
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
CHROMEDRIVER = shutil.which("chromedriver")

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


def _start(cmd: list, cwd) -> subprocess.Popen:
    port = _free_port()
    server = subprocess.Popen(cmd + ["--port", str(port)], cwd=cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True,
                              env=dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true"))
    server.port = port
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                raise AssertionError(f"{cmd} did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)


def _stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium chromium-driver)")
    work = tmp_path_factory.mktemp("ui")
    proc = run_snakemake(work, STUDY, "--cores", "2")
    out = proc.stdout + proc.stderr
    # start the UI with the command the run printed, and open the address it printed
    m = re.search(r"MLflow: (\S+ ui --app-name ouroboros --backend-store-uri \S+) --port 5000, then open (\S+)", out)
    assert m, out[-3000:]
    server = _start(m.group(1).split(), work)
    try:
        yield {"base": f"http://127.0.0.1:{server.port}", "printed": m.group(2).replace(":5000", f":{server.port}"),
               "uri": m.group(1).split("--backend-store-uri ")[1], "command": m.group(1).split(), "work": work}
    finally:
        _stop(server)


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
    exp_id, chains, _ = _ids(ui["uri"])
    assert ui["printed"] == f"{ui['base']}/#/experiments/{exp_id}/runs?workflowType=machine_learning"
    page = _dom(ui["printed"])
    assert "ouroboros-uitest" in page and all(name in page for name in chains)
    # the sidebar of the model-training view links the model registry; the GenAI view's, prompts instead
    assert 'href="#/models"' in page and 'href="#/prompts"' not in page
    # a fresh browser on the bare addresses too: the app records the model-training view as its choice
    assert 'href="#/prompts"' not in _dom(f"{ui['base']}/#/experiments")
    models = _dom(f"{ui['base']}/#/experiments/{exp_id}/models")
    assert "Agent versions" not in models and ">Models<" in models
    for name in ("gen2-s0-accumulate-gmm", "gen0-s0-shared-gmm", "gen2-s0-mix-rho0_1-gauss"):
        assert name in models, name


def _click_the_study(start: str, exp_id: str) -> tuple[str, str]:
    """Open ``start`` in a fresh headless Chromium, click the study's name (a link to its experiment page) as a
    user does, and return (the address it lands on, the page's text)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(start)
        wait = WebDriverWait(driver, 60)
        link = wait.until(ec.element_to_be_clickable(
            (By.XPATH, f"//a[normalize-space(.)='ouroboros-uitest' and contains(@href, '#/experiments/{exp_id}')]")))
        link.click()
        wait.until(lambda d: "/runs" in d.current_url or "/overview" in d.current_url)
        wait.until(lambda d: "s0 accumulate gmm" in d.find_element(By.TAG_NAME, "body").text
                   or "Usage" in d.find_element(By.TAG_NAME, "body").text)
        return driver.current_url, driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.quit()


def test_clicking_the_study_opens_its_runs_in_the_model_training_view(ui):
    if CHROMEDRIVER is None:
        pytest.skip("chromedriver is not installed (Debian: apt-get install chromium-driver)")
    pytest.importorskip("selenium")
    exp_id, chains, _ = _ids(ui["uri"])
    for start in (ui["printed"], f"{ui['base']}/#/experiments"):  # the study's name in its header; the list
        url, text = _click_the_study(start, exp_id)
        assert f"#/experiments/{exp_id}/runs" in url and "workflowType=machine_learning" in url, (start, url)
        assert all(name in text for name in chains) and "Run Name" in text, (start, text[:500])
        assert "Usage" not in text and "Detect Issues" not in text, (start, text[:500])
    # the check itself: MLflow's plain server, the same click from the same list lands on the GenAI overview
    plain = [a for a in ui["command"] if a not in ("--app-name", "ouroboros")]
    server = _start(plain, ui["work"])
    try:
        url, text = _click_the_study(f"http://127.0.0.1:{server.port}/#/experiments?workflowType=machine_learning",
                                     exp_id)
    finally:
        _stop(server)
    assert "/overview" in url and "workflowType=genai" in url, url


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
