"""Profiles and conda environments: what a cluster run would submit, and environments that match pyproject."""
import re
import tomllib

import pytest
import yaml

from conftest import REPO, run_snakemake

CONDA_NAMES = {"torch": "pytorch", "snakemake": "snakemake-minimal"}


def _name(spec: str) -> str:
    return re.split(r"[<>=!~ \[]", spec.strip(), maxsplit=1)[0].lower()


def test_conda_environments_match_pyproject():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {CONDA_NAMES.get(_name(d), _name(d)) for d in deps}
    rules = "\n".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))
    envs = set(re.findall(r'conda:\s*\n\s*"([^"]+)"', rules))
    assert envs, "no conda: directives found"
    for env in envs:
        path = (REPO / "rules" / env).resolve()
        assert path.is_file(), f"a rule names the conda environment {env}, which does not exist"
        have = {_name(d) for d in yaml.safe_load(path.read_text())["dependencies"] if isinstance(d, str)}
        assert wanted <= have, f"{path.name} lacks {sorted(wanted - have)}"
    rule_count = len(re.findall(r"^rule \w+:", rules, re.M))
    assert len(re.findall(r"^\s+conda:", rules, re.M)) == rule_count


def test_profiles_are_valid_yaml_with_the_expected_keys():
    local = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    slurm = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert local["rerun-incomplete"] is True and local["retries"] >= 1
    assert {"train", "generate", "evaluate", "block"} <= set(local["set-resources"])
    assert slurm["executor"] == "slurm"
    # keys of the workflow profile override a general profile's: the SLURM profile must not need them
    assert not (set(slurm) & {"set-resources", "set-threads"})
    assert set(slurm["groups"].values()) == set(slurm["group-components"])


@pytest.mark.e2e
def test_slurm_profile_dry_run_shows_submissions_with_resources(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]'")
    cfg = {"study": "dry", "seeds": [0], "generations": 2, "tracking": {"enabled": False},
           "experiments": [{"name": "lm", "target": "lm", "n": 50, "regimes": ["replace"],
                            "params": {"device": "cuda", "n_layer": 1, "n_embd": 32, "block_size": 48,
                                       "seq_len": 16, "prompt_len": 16}},
                           {"name": "gaussian", "target": "gaussian", "n": 20, "replicates": 5,
                            "regimes": ["replace"], "generations": 10, "block": 5}]}
    proc = run_snakemake(tmp_path, cfg, "--profile", str(REPO / "profiles/slurm"), "-n")
    out = proc.stdout + proc.stderr
    train = out[out.index("rule train:"):].split("\n\n")[0]
    assert "gpu=1" in train and "mem_mb=8000" in train and "runtime=240" in train
    assert "Group job small" in out or "group" in out.lower()


@pytest.mark.e2e
def test_slurm_profile_dry_run_of_the_default_study(tmp_path):
    """Every rule of the default study (tracking on) in the SLURM profile's groups: a valid DAG."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]'")
    proc = run_snakemake(tmp_path, None, "--profile", str(REPO / "profiles/slurm"), "-n",
                         "--configfile", str(REPO / "config/config.yaml"))
    out = proc.stdout + proc.stderr
    assert "Group job small" in out and "Group job report" in out
    for rule in ("track_group", "track_study", "train", "sample_grid",
                 "distribution"):
        assert f"rule {rule}:" in out
