"""The README and its reference pages (docs/*.md) as written: the README's two commands are the ones CI and users
run, every shell and Python snippet of the pages runs on a tiny study (named like the default one, with the same
experiment names and generations), and every link between the pages leads somewhere."""
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, run_snakemake, snakemake_log

PAGES = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
#: the README and the reference pages, one text: what the snippet tests read
README = "\n\n".join(p.read_text() for p in PAGES)
BIN = Path(sys.executable).parent


def _blocks(lang="bash"):
    """Fenced blocks of a language, also those indented inside a list item (dedented)."""
    return [textwrap.dedent(b) for b in re.findall(rf"^[ ]*```{lang}\n(.*?)\n[ ]*```", README, re.S | re.M)]


def _commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    text = re.sub(r"\\\n\s*", " ", block)
    out = []
    for line in text.splitlines():
        line = re.sub(r"\s+#.*$", "", line.strip()) if not line.strip().startswith("#") else ""
        if line:
            out.append(line)
    return out


def test_ci_runs_the_readme_test_command():
    test_cmd = next(b for b in _blocks() if "pytest" in b)
    assert test_cmd.strip() in (REPO / ".ci/run").read_text()


def test_readme_main_command_runs_the_default_study():
    main = _blocks()[0]
    assert "pip install -e ." in main and "snakemake --cores all" in main
    assert (REPO / "config/config.yaml").is_file()


def test_readme_config_examples_are_valid(tmp_path):
    from ouroboros.preflight import check_files

    studies = [b for b in _blocks("yaml") if b.lstrip().startswith("study:")]
    assert studies
    for i, block in enumerate(studies):
        f = tmp_path / f"example{i}.yaml"
        f.write_text(block)
        check_files([f], REPO, tmp_path)


# The default study's gaussian and gmm experiments, shrunk: same names, generations and tracking.every, so the
# README's names (gmm-replace-seed0-gen40, gaussian-replace-seed0-gen100) exist.
TINY = {"study": "default", "seeds": [0], "generations": 100, "tracking": {"every": 10},
        "experiments": [
            {"name": "gaussian", "target": "gaussian", "n": 20, "replicates": 5, "regimes": ["replace"],
             "params": {"d": 1}},
            {"name": "gmm", "target": "gmm", "n": 60, "replicates": 1, "generations": 40, "regimes": ["replace"],
             "params": {"components": 3, "truth": "separated", "eval_size": 300, "test_size": 100}}]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    work = tmp_path_factory.mktemp("readme")
    proc = run_snakemake(work, TINY, "--cores", "2")
    (work / "run.out").write_text(proc.stdout + proc.stderr)
    (work / "run.log").write_text(snakemake_log(work))  # later tests run snakemake here again (the report)
    return work


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(cmd: str, cwd: Path, tmp: Path) -> None:
    """Start a server command from the README on a free port, wait for /health, stop it."""
    port = _free_port()
    cmd = cmd.replace("--port 5000", f"--port {port}").replace("0.0.0.0", "127.0.0.1")
    cmd = cmd.replace("/scratch/me", str(tmp)).replace("$PWD", str(cwd))
    cmd = re.sub(r"^(\.venv/bin/)?mlflow ", f"{BIN}/mlflow ", cmd)
    proc = subprocess.Popen(cmd, shell=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env=dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true"))
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"{cmd} exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    assert resp.status == 200
                    return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"{cmd} did not answer on port {port}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.e2e
def test_every_readme_snippet_runs(tiny, tmp_path):
    """Each command of each bash block runs here, or is covered elsewhere for the reason given."""
    elsewhere = {
        "python3 -m venv": "the README commands: CI runs the test command in a fresh clone",
        "--profile profiles/slurm --configfile": "submits to SLURM: tests/test_slurm.py runs this profile",
    }
    ran, skipped = [], []
    snakemake = (f"{sys.executable} -m snakemake -s {REPO / 'Snakefile'} --directory {tiny} "
                 f"--configfile {tiny / 'study.yaml'}")
    for block in _blocks():
        for cmd in _commands(block):
            reason = next((why for key, why in elsewhere.items() if key in cmd), None)
            if reason:
                skipped.append((cmd, reason))
            elif re.match(r"(\.venv/bin/)?mlflow (ui|server) ", cmd):
                _serve(cmd, tiny, tmp_path)
                ran.append(cmd)
            elif cmd.startswith(".venv/bin/pip install"):
                extra = re.search(r"'\.\[(\w+)\]'", cmd).group(1)
                assert extra in ("slurm",), cmd  # the test extra already brings the SLURM plugin
                import importlib.util
                assert importlib.util.find_spec("snakemake_executor_plugin_slurm"), cmd
                ran.append(cmd)
            elif cmd.startswith(".venv/bin/ouroboros "):
                subprocess.run(shlex.split(cmd.replace(".venv/bin/", f"{BIN}/")), cwd=REPO, check=True,
                               capture_output=True)
                ran.append(cmd)
            elif ".venv/bin/snakemake" in cmd:
                real = cmd.replace(".venv/bin/snakemake", snakemake).replace(" profiles/", f" {REPO}/profiles/")
                proc = subprocess.run(real, shell=True, cwd=tiny, capture_output=True, text=True)
                assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
                ran.append(cmd)
            else:
                raise AssertionError(f"README command with no rule in this test: {cmd}")
    assert any("--report" in c for c in ran) and (tiny / "results/default/report.html").is_file()
    _one_report_category_per_target(tiny / "results/default/report.html")
    assert any("--unlock" in c for c in ran) and any("mlflow ui" in c for c in ran)
    assert any("mlflow server" in c for c in ran) and any("ouroboros check" in c for c in ran)
    assert skipped


def _one_report_category_per_target(report: Path) -> None:
    """The report groups metric plots by target, each holding every metric of that target: kl_truth_model,
    which gaussian and gmm both report, sits under each (it once sat in a third group "gaussian, gmm")."""
    from ouroboros.chain import METRICS as ENGINE_METRICS
    from ouroboros.targets import target_class

    html = report.read_text()
    categories = json.loads(re.search(r"var categories = (\{.*?\});\n", html).group(1))
    metrics = categories["Metrics by generation"]
    assert sorted(metrics) == ["gaussian", "gmm"]
    for target, files in metrics.items():
        assert files == sorted(f"results/default/plots/{target}/{m}.png"
                               for m in [*target_class(target).metrics, *ENGINE_METRICS])
    assert "<strong>kl_truth_model</strong> against generation: KL(truth" in html  # each plot's own caption


@pytest.mark.e2e
def test_every_readme_python_snippet_runs(tiny):
    blocks = _blocks("python")
    assert blocks
    for code in blocks:
        proc = subprocess.run([sys.executable, "-c", code], cwd=tiny, capture_output=True, text=True,
                              env=dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true"))
        assert proc.returncode == 0, f"{code}\n{proc.stderr[-4000:]}"


@pytest.mark.e2e
def test_the_run_ends_with_where_the_results_are(tiny, tmp_path):
    out = (tiny / "run.out").read_text()
    # run with --directory: absolute paths, and a report command naming the Snakefile and the folder
    results = tiny.resolve() / "results/default"
    assert f"Study default is done: table {results}/metrics.csv, plots {results}/plots/" in out
    # the console: a line per finished block of generations with its headline metric, the job stanzas in the log
    table = pd.read_csv(results / "metrics.csv")
    last = table[(table.experiment == "gmm") & (table.metric == "kl_truth_model")].sort_values("generation").iloc[-1]
    figure = re.escape(f"{last.value:.4g}")  # 1.217e+04: its '+' is text
    assert re.search(rf"\] gmm/replace/seed0 gens \d+-40: kl_truth_model {figure} nats at gen 40 \| "
                     rf"\d+ of \d+ jobs", out), out
    assert re.search(r"\] gaussian/replace/seed0 gens \d+-100: var_ratio_mean \S+ at gen 100", out), out
    assert "rule block:" not in out and "rule block:" in (tiny / "run.log").read_text()
    # the commands as this environment holds them (.venv/bin/..., as the README spells them)
    m = re.search(rf"report: ({re.escape(str(BIN))}/snakemake -s {REPO / 'Snakefile'} --directory {tiny.resolve()} "
                  rf"--report {results}/report.html --configfile \S*study.yaml)\n", out)
    assert m, out
    # pasted in another folder than the run's, it works
    (results / "report.html").unlink(missing_ok=True)
    pasted = subprocess.run(shlex.split(m.group(1)), cwd=tmp_path, capture_output=True, text=True)
    assert pasted.returncode == 0 and (results / "report.html").is_file(), pasted.stderr[-2000:]
    exp_id = json.loads((tiny / "results/default/tracking/study.json").read_text())["experiment_id"]
    assert (f"MLflow: {BIN}/mlflow ui --app-name ouroboros --backend-store-uri "
            f"sqlite:///{(tiny / 'results/mlflow.db').resolve()} --port 5000, then open "
            f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs?workflowType=machine_learning") in out
    assert yaml.safe_load((tiny / "study.yaml").read_text())["study"] == "default"
    # a rerun with nothing to do still says where the results are
    again = run_snakemake(tiny, None, "--configfile", str(tiny / "study.yaml"), "--cores", "1")
    said = again.stdout + again.stderr
    assert "Nothing to be done" in said and "Study default is up to date (nothing to do): table " in said, said

def _readme_table():
    sys.path.insert(0, str(REPO / "benchmarks"))
    import readme_table

    return readme_table


def test_every_figure_of_the_studies_tables_carries_its_commit():
    """The studies tables are written by benchmarks/readme_table.py: measured rows from a run's record, the
    others stamped with the commit that wrote them; a hand edit of a figure cell loses its stamp and fails."""
    rt = _readme_table()
    rows = [m for line in (REPO / rt.STUDIES_PAGE).read_text().splitlines() if (m := rt.ROW.match(line))]
    assert len(rows) >= 15
    for m in rows:
        assert rt.STAMP.search(m.group("figures")), m.group("study")


def test_the_table_script_writes_a_measured_row_from_its_record():
    rt = _readme_table()
    text = ("| file | experiment | measured |\n| --- | --- | --- |\n"
            "| `config/studies/oreilly.yaml` | O'Reilly | mean std 0.499 |\n"
            "| `config/studies/dedup.yaml` | dedup | 158 s |\n")
    record = {"study": "oreilly", "headline": {"std_mean@1000 (gaussian/replace)": 0.4861},
              "theory": {"std_mean@1000 (gaussian/replace)": 0.4718}, "jobs": 18, "wall_on_s": 25.3,
              "tracking_share": 0.21, "commit": "abc1234", "measured": "2026-12-03 09:00 UTC"}
    out, changed = rt.rewrite(text, {"oreilly": record, "dedup": {"study": "dedup", "headline": {}}})
    assert changed == ["oreilly", "dedup"]
    row = out.splitlines()[2]
    assert "`std_mean` at generation 1,000 (gaussian/replace): **0.486** (closed form 0.472)" in row
    assert "18 jobs, 25 s wall with tracking (21% of it tracking)" in row and "0.499" not in row
    assert row.endswith("*(measured at `abc1234`, 2026-12-03 09:00 UTC)* |")
    assert "*(figures written at `" in out.splitlines()[3]  # no record with figures: stamped, kept
    assert rt.rewrite(out, {"oreilly": record})[1] == []  # idempotent


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_between_the_pages_leads_somewhere():
    """The README's contents list and the pages' cross-references: each relative link names a file that exists
    and, with #anchor, a heading of it."""
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            if not path.exists():
                broken.append(f"{page.name}: {target} (no file)")
            elif anchor and path.suffix == ".md":
                heads = {_anchor(h) for h in re.findall(r"^#+ (.+)$", path.read_text(), flags=re.M)}
                if anchor not in heads:
                    broken.append(f"{page.name}: {target} (no heading)")
    assert not broken, broken
    readme = (REPO / "README.md").read_text()
    assert readme.startswith("# Ouroboros") and "Contents:" in readme
    for page in PAGES[1:]:
        assert f"(docs/{page.name}" in readme, f"the README does not link {page.name}"
