"""Bad input is caught before any job: a table of hostile configs, each refused with one line naming the key
(and the file and line that set it); YAML syntax errors name the line; sizes and the tracking folder are
checked up front."""
import copy
import os
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from ouroboros import preflight
from ouroboros.settings import ConfigError

GOOD = {"study": "tiny", "seeds": [0], "generations": 3,
        "experiments": [{"target": "gaussian", "n": 10, "regimes": ["replace", "mix"]}]}
_DELETE = object()


def _with(path, value, base=GOOD):
    cfg = copy.deepcopy(base)
    node = cfg
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return cfg


def _exp(**kw):
    return ["experiments", 0], kw


NAN, INF = float("nan"), float("inf")
E = ["experiments", 0]


def _claim(drop=(), statement="s", **check):
    base = {"kind": "value", "experiment": "gaussian", "regime": "replace", "metric": "var_ratio_mean",
            "generation": 3, "expected": 1.0, "tolerance": 0.1}
    check = {k: v for k, v in dict(base, **check).items() if k not in drop}
    return [{"statement": statement, "check": check}]


BAD = [
    # claims (ouroboros.claims): what they name must be produced, before any job
    (["claims"], _claim(experiment="nope"), ["claims[0].check.experiment", "'nope' is not an experiment"]),
    (["claims"], _claim(regime="accumulate"), ["claims[0].check.regime", "not a regime of experiment gaussian",
                                              "mix-rho0.1, replace"]),
    (["claims"], _claim(metric="recall"), ["claims[0].check.metric", "not a metric of target gaussian"]),
    (["claims"], _claim(generation=9), ["claims[0].check.generation", "generation 9 is not run", "0 to 3"]),
    (["claims"], _claim(drop=("tolerance",)), ["claims[0].check", "a value check needs tolerance"]),
    (["claims"], _claim(drop=("regime",)), ["claims[0].check", "names its regime"]),
    (["claims"], _claim(kind="order", drop=("regime",), above="replace"), ["claims[0].check", "above and below"]),
    (["claims"], _claim(kind="order", drop=("regime",), above={"experiment": "nope", "regime": "replace"},
                        below="replace"), ["claims[0].check.above.experiment", "'nope' is not an experiment"]),
    (["claims"], _claim(kind="order", drop=("regime",), above={"regime": "accumulate"}, below="replace"),
     ["claims[0].check.above.regime", "not a regime of experiment gaussian"]),
    (["claims"], _claim(kind="order", drop=("regime", "experiment"), above={"regime": "replace"}, below="replace"),
     ["claims[0].check", "names its experiment"]),
    (["claims"], _claim(kind="slope"), ["claims[0].check", "names its sweep plot"]),
    (["claims"], _claim(kind="slope", sweep="nope"), ["claims[0].check.sweep", "'nope' is not a sweep plot"]),
    (["claims"], _claim(kind="teleport"), ["claims"]),
    (["claims"], _claim(expected="closed_form", metric="kl_truth_model", regime="replace"),
     ["claims[0].check.expected", "no closed form for kl_truth_model"]),
    (["claims"], _claim(kind="order", expected="closed_form", above="replace", below="replace"),
     ["claims[0].check.expected", "closed_form is for value and slope checks"]),
    (["claims"], _claim(colour=1), ["claims"]),
    (["claims"], [{"statement": "s", "definition": 9, "check": _claim()[0]["check"]}], ["claims"]),
    (["claims"], _claim(statement=""), ["claims"]),
    # top level
    (["study"], _DELETE, ["study", "required"]),
    (["study"], "../escape", ["study", "does not match"]),
    (["study"], "my study", ["study"]),
    (["study"], 3, ["study", "not of type 'string'"]),
    (["colour"], "red", ["colour", "unknown key", "allowed keys"]),
    (["seeds"], [], ["seeds"]),
    (["seeds"], [0, 0], ["seeds", "non-unique"]),
    (["seeds"], [-1], ["seeds[0]", "minimum"]),
    (["seeds"], "0", ["seeds"]),
    (["generations"], 0, ["generations", "minimum of 1"]),
    (["generations"], -5, ["generations"]),
    (["generations"], 2.5, ["generations", "integer"]),
    (["generations"], INF, ["generations", "not a finite number"]),
    (["generations"], 1_000_000_000, ["generations", "jobs", "limits.jobs"]),
    (["experiments"], [], ["experiments"]),
    (["experiments"], _DELETE, ["experiments", "required"]),
    (["experiments"], {"target": "gaussian"}, ["experiments", "array"]),
    # an experiment
    (E + ["target"], "gausian", ["target", "gaussian", "gmm"]),
    (E + ["target"], _DELETE, ["target", "required"]),
    (E + ["n"], 1, ["n", "minimum of 2"]),
    (E + ["n"], "10", ["n", "integer"]),
    (E + ["n"], NAN, ["n", "not a finite number"]),
    (E + ["replicates"], 0, ["replicates", "minimum"]),
    (E + ["lam"], NAN, ["lam", "not a finite number"]),
    (E + ["lam"], INF, ["lam", "not a finite number"]),
    (E + ["lam"], -INF, ["lam", "not a finite number"]),
    (E + ["lam"], 0, ["lam"]),
    (E + ["lam"], -1.0, ["lam"]),
    (E + ["generations"], 0, ["generations"]),
    (E + ["block"], 0, ["block", "minimum"]),
    (E + ["seeds"], [1, 1], ["seeds", "non-unique"]),
    (E + ["name"], "a/b", ["name", "does not match"]),
    (E + ["mix"], {"rho": 0.1}, ["experiments[0].mix", "unknown key", "allowed keys"]),
    (E + ["epochs"], 3, ["experiments[0].epochs", "unknown key"]),
    # regimes
    (E + ["regimes"], ["replace", "resample"], ["regimes", "accumulate-subsample"]),
    (E + ["regimes"], [], ["regimes"]),
    (E + ["regimes"], ["replace", "replace"], ["same label"]),
    (E + ["regimes", 1], {"kind": "mix", "rho": 1.5}, ["regimes[1].rho", "maximum"]),
    (E + ["regimes", 1], {"kind": "mix", "rho": -0.1}, ["regimes[1].rho", "minimum"]),
    (E + ["regimes", 1], {"kind": "mix", "rho": NAN}, ["rho", "not a finite number"]),
    (E + ["regimes", 1], {"kind": "mix", "share": 0.1}, ["regimes[1]", "share", "allowed keys: fresh, n_real"]),
    (E + ["regimes", 1], {"rho": 0.1}, ["regimes"]),
    (E + ["regimes", 1], {"kind": "mix", "n_real": 5}, ["regimes[1]", "set both n_real and n_synthetic"]),
    (E + ["regimes", 1], {"kind": "mix", "n_real": 500, "n_synthetic": 5}, ["n_real must be at most n"]),
    (E + ["regimes", 1], {"kind": "mix", "n_real": 0, "n_synthetic": 0}, ["must be positive"]),
    (E + ["regimes", 1], {"kind": "mix", "n_real": -1, "n_synthetic": 5}, ["n_real", "minimum"]),
    (E + ["regimes", 1], {"kind": "accumulate", "rho": 0.1}, ["regimes[1]", "rho", "none: this kind has no settings"]),
    # target settings
    (E + ["params"], {"dim": 3}, ["params", "dim", "allowed keys"]),
    (E + ["params"], {"d": 0}, ["params.d", "minimum"]),
    (E + ["params"], {"method": "exact"}, ["method", "sample", "sufficient"]),
    (E + ["params"], {"method": "counts"}, ["method", "sample", "sufficient"]),
    (E + ["params"], [1, 2], ["params", "object"]),
    (E, {"target": "gmm", "n": 2, "params": {"components": 3}}, ["components"]),
    (E, {"target": "gmm", "params": {"truth": {"weights": [0.3], "means": [[0, 0]]}}}, ["sum to 1"]),
    (E, {"target": "gmm", "params": {"init": "best"}}, ["init", "kmeans"]),
    (E, {"target": "categorical", "params": {"K": 1}}, ["params.K", "minimum"]),
    (E, {"target": "categorical", "params": {"truth": "zipf", "beta": NAN}}, ["beta", "not a finite number"]),
    (E, {"target": "linreg", "n": 5, "params": {"d": 10}}, ["5 rows cannot fit d=10"]),
    (E, {"target": "linreg", "params": {"design": "random"}}, ["design", "fixed", "fresh"]),
    (E, {"target": "vae", "params": {"data": "cifar"}}, ["data", "digits", "mnist"]),
    (E, {"target": "vae", "params": {"epochs": 0}}, ["epochs", "minimum"]),
    (E, {"target": "lm", "params": {"tokenizer": "words"}}, ["tokenizer", "char", "bpe"]),
    (E, {"target": "lm", "params": {"top_p": 1.5}}, ["top_p"]),
    (E, {"target": "vae", "block": 5}, ["block", "at most 1"]),
    # sweeps and curation
    (E + ["sweep"], {"size": [10]}, ["sweep", "size", "allowed keys"]),
    (E + ["sweep"], {"n": [10, 1]}, ["n", "minimum of 2"]),
    (E + ["sweep"], {"rho": [0.1, 2.0]}, ["rho"]),
    (E + ["sweep"], {"lam": [1.0, NAN]}, ["lam", "not a finite number"]),
    (E + ["sweep"], {"n": []}, ["sweep", "n"]),
    (E + ["sweep"], {"n": list(range(2, 1002)), "lam": [0.5 + i / 10_000 for i in range(1000)]},
     ["sweep", "1,000,000 experiments (n 1,000 x lam 1,000)", "at most 2,000"]),  # refused before it expands
    (E + ["curation"], {"selector": "best"}, ["selector", "top", "dedup"]),
    (E + ["curation"], {"scorer": "truth"}, ["curation", "selector", "required"]),
    (E + ["curation"], {"selector": "top", "scorer": "oracle"}, ["scorer", "truth"]),
    (E + ["curation"], {"selector": "top", "scorer": "truth", "q": 1.5}, ["q"]),
    # plots, tracking, limits
    (["plots", "band"], "iqr", ["band", "minmax"]),
    (["plots", "sweeps"], [{"name": "s", "metric": "std_mean"}], ["sweeps[0]", "x", "required"]),
    (["plots", "sweeps"], [{"name": "s", "metric": "no_such_metric", "x": "n"}], ["no_such_metric"]),
    (["tracking", "every"], 0, ["tracking.every", "minimum"]),
    (["tracking", "uri"], "ftp://host/db", ["tracking.uri", "unsupported"]),
    (["tracking", "server"], "x", ["tracking.server", "unknown key"]),
    (["limits", "jobs"], 2, ["jobs", "limits.jobs = 2"]),
    (["limits", "job_memory_gb"], 1e-8, ["a job would hold about", "limits.job_memory_gb"]),
    (["limits", "job_memory_gb"], -1, ["job_memory_gb"]),
    # whole-number floats are not integers (JSON Schema's would be), names end at their last character
    (["generations"], 3.0, ["generations", "3.0 is not of type 'integer'"]),
    (["seeds"], [0.0], ["seeds[0]", "not of type 'integer'"]),
    (E + ["block"], 2.0, ["block", "not of type 'integer'"]),
    (E + ["n"], 10.0, ["n", "not of type 'integer'"]),
    (E + ["replicates"], 2.0, ["replicates", "not of type 'integer'"]),
    (E, {"target": "categorical", "params": {"K": 10.0}}, ["params.K", "not of type 'integer'"]),
    (["study"], "nl\n", ["study", "does not match"]),
    (E + ["name"], "x\n", ["name", "does not match"]),
    (E + ["sweep"], {"n": [10, 20.0]}, ["n", "not of type 'integer'"]),
    # issue 35: a mix that keeps no real item; experiment-level problems named as the experiment's; relative
    # paths say what they were resolved against; a sampling bias that overflows every sampler
    (E, {"target": "gaussian", "n": 2, "regimes": [{"kind": "mix", "rho": 0.1}]},
     ["regime mix-rho0.1", "rho=0.1", "round(0.2) = 0 real items of n=2", "replace"]),
    (E, {"target": "gaussian", "n": 2, "regimes": [{"kind": "mix", "rho": 0.9}]}, ["rho=0.9", "no synthetic item"]),
    (E, {"target": "lm", "n": 4, "replicates": 3, "regimes": ["replace"]}, ["(experiment lm)", "replicates: 1"]),
    (E, {"target": "lm", "n": 4, "replicates": 1, "regimes": ["replace", "accumulate"],
         "params": {"corpus": "files", "train": "no/such.txt", "test": "no/such.txt"}},
     ["(experiment lm)", "'no/such.txt' does not exist, resolved against /"]),
    (E, {"target": "lm", "n": 4, "replicates": 1, "regimes": ["replace"],
         "params": {"backbone": "pretrained", "model": "no/such.gguf"}},
     ["(experiment lm)", "no/such.gguf does not exist (resolved against /"]),
    (E + ["lam"], 1e300, ["lam", "maximum of 1000"]),
    (["tracking", "uri"], "sqlite:////tmp/a\0b/mlflow.db", ["tracking.uri", "NUL character"]),
    (E, {"target": "lm", "params": {"corpus": "files", "train": "a\0b.txt"}}, ["params.train", "NUL character"]),
    (E, {"target": "gmm", "params": {"eval_size": 2_000_000_000}}, ["eval_size", "maximum of 10000000"]),
    (E, {"target": "diffusion", "params": {"data": "gmm", "eval_size": 2_000_000_000}}, ["eval_size", "maximum"]),
    (E, {"target": "lm", "params": {"decoding": "beam", "beams": 1_000_000}}, ["beams", "maximum of 64"]),
    (E + ["sweep"], {"lam": [1.0, 1e300]}, ["lam", "maximum of 1000"]),
    # estimated from the settings, without allocating what is estimated
    (E, {"target": "categorical", "params": {"K": 1_000_000_000}}, ["a job would hold about", "GB"]),
]


@pytest.mark.parametrize("path,value,words", BAD, ids=lambda x: str(x)[:40])
def test_a_bad_config_is_one_line_naming_the_key(tmp_path, path, value, words):
    with pytest.raises(ConfigError) as err:
        preflight.prepare(_with(path, value), REPO, tmp_path)
    msg = str(err.value)
    assert "\n" not in msg, msg
    assert msg.startswith("invalid config at "), msg
    for w in words:
        assert w in msg, msg


def test_the_table_is_large_and_the_good_config_passes(tmp_path):
    assert len(BAD) >= 60
    prepared = preflight.prepare(copy.deepcopy(GOOD), REPO, tmp_path)
    assert len(prepared.study.chains) == 2 and prepared.tracking["uri"].startswith("sqlite:///")


def test_absurd_sizes_are_refused_with_the_estimate(tmp_path):
    huge = _with(E, {"target": "gaussian", "n": 100_000, "replicates": 1_000_000, "params": {"d": 10}})
    with pytest.raises(ConfigError) as err:
        preflight.prepare(huge, REPO, tmp_path)
    msg = str(err.value)
    assert "1,000,000 replicates" in msg and "over the limit" in msg and "this machine's memory" in msg
    raised = _with(["limits", "job_memory_gb"], 1e9, huge)
    with pytest.raises(ConfigError, match="would write about .* GB more .* free"):  # a setting raises the limit;
        preflight.prepare(raised, REPO, tmp_path)  # the disk it would fill then speaks
    # an accumulated pool of points grows with the generations
    acc = _with(E, {"target": "gaussian", "n": 1000, "replicates": 1000, "generations": 100_000,
                    "regimes": ["accumulate-subsample"], "params": {"d": 10}})
    with pytest.raises(ConfigError, match="accumulate-subsample"):
        preflight.prepare(_with(["limits", "job_memory_gb"], 100, acc), REPO, tmp_path)


def test_the_estimate_grows_with_what_a_job_holds(tmp_path):
    from ouroboros.config import Study

    def worst(cfg):
        return max(preflight.job_bytes(c)[0] for c in Study.from_config(cfg).chains)

    base = worst(GOOD)
    assert worst(_with(E + ["replicates"], 10)) == pytest.approx(10 * base)
    assert worst(_with(E + ["params"], {"d": 4})) > 4 * base
    assert worst(_with(E + ["regimes"], ["accumulate-subsample"])) > worst(_with(E + ["regimes"], ["accumulate"]))


def test_tracking_folder_is_checked_before_any_job(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=f"cannot create the folder {blocker}/sub.*is a file"):
        preflight.prepare(_with(["tracking", "uri"], f"sqlite:///{blocker}/sub/mlflow.db"), REPO, tmp_path)
    with pytest.raises(ConfigError, match="names a folder"):
        preflight.prepare(_with(["tracking", "uri"], f"sqlite:///{tmp_path}"), REPO, tmp_path)
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(ConfigError, match="not writable"):
            preflight.prepare(_with(["tracking", "uri"], f"sqlite:///{ro}/db/mlflow.db"), REPO, tmp_path)
    # nothing was created, and tracking switched off is not checked
    assert not (tmp_path / "afile.d").exists()
    off = _with(["tracking"], {"enabled": False, "uri": f"sqlite:///{blocker}/sub/mlflow.db"})
    preflight.prepare(off, REPO, tmp_path)


def test_errors_name_the_file_and_line_that_set_the_key(tmp_path):
    f = tmp_path / "study.yaml"
    f.write_text("study: s\ngenerations: 3\nexperiments:\n  - target: gaussian\n    n: 10\n\n    lam: .nan\n")
    with pytest.raises(ConfigError, match=rf"experiments\[0\].lam \({f}, line 7\): nan is not a finite number"):
        preflight.check_files([f], REPO, tmp_path)
    f.write_text("study: s\nexperiments:\n  - target: gaussian\n    params: {d: 2, dee: 3}\n")
    with pytest.raises(ConfigError, match=rf"params.dee \({f}, line 4\): unknown key 'dee'"):
        preflight.check_files([f], REPO, tmp_path)
    # a key the study file does not set is looked up in the default config it overrides
    assert "config.yaml, line" in preflight.locate("invalid config at seeds: x", [REPO / "config/config.yaml", f])


@pytest.mark.parametrize("text,line", [("study: s\nexperiments:\n  - target: gaussian\n    n: [10\n", 5),
                                       ("study: s\n\texperiments: []\n", 2),
                                       ("study: s\nexperiments:\n  - target: gaussian\n   n: 10\n", 4)])
def test_a_yaml_syntax_error_names_file_and_line(tmp_path, text, line):
    f = tmp_path / "broken.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=rf"{f}, line {line}, column \d+: not valid YAML"):
        preflight.check_files([f], REPO, tmp_path)


def test_ouroboros_check_command(tmp_path, capsys):
    from ouroboros.cli import main

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(GOOD))
    assert main(["check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "tiny: 1 experiment(s), 2 chain(s), 11 jobs to run here (as snakemake -n counts them)" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: s\nexperiments:\n  - target: gaussian\n    n: [10\n")
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}, line 5" in err


def _laughs(levels: int = 9) -> str:
    """A YAML "billion laughs": nine levels of nine aliases (387 million strings once expanded)."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines + ["study: laughs", f"description: *a{levels - 1}",
                               "experiments:\n  - target: gaussian\n    n: 10"]) + "\n"


#: hostile config files: (what the file holds, words the one-line refusal must hold)
BAD_FILES = [
    (_laughs(), ["description", "expands to", "YAML aliases", "100,000"]),
    ("study: first\nstudy: second\nexperiments:\n  - target: gaussian\n", ["line 2", "'study' is written twice",
                                                                             "first at line 1"]),
    ("study: s\nexperiments:\n  - target: gaussian\n    n: 10\n    n: 20\n", ["line 5", "'n' is written twice"]),
    ("study: s\nexperiments:\n  - {target: gaussian, n: 10, n: 20}\n", ["line 3", "'n' is written twice"]),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", ["not a text (UTF-8) file"]),
    (b"study: s\x00\n", ["not a text file", "NUL"]),
    ("", ["the config file is empty"]),
    ("# only a comment\n", ["the config file is empty"]),
    ("- study: s\n", ["a config file is a mapping", "list"]),
    ("x: " + "[" * 20_000 + "]" * 20_000 + "\n", ["nested too deep"]),
    ("".join("  " * i + "a:\n" for i in range(200)) + "  " * 200 + "b: 1\n", ["nested too deep", "64 levels"]),
    ("study: s\n#" + "x" * (2 << 20) + "\n", ["holds 2.1 MB", "at most 1 MB"]),
]


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_a_config_that_is_not_a_regular_file_is_refused_before_it_is_read(tmp_path, kind):
    """A FIFO would wait forever for a writer, /dev/zero never ends: both are refused from their type."""
    if kind == "fifo":
        path = tmp_path / "pipe.yaml"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero") if kind == "device" else tmp_path
    with pytest.raises(ConfigError, match=f"{path} is {'a FIFO' if kind == 'fifo' else 'a ' + kind}"):
        preflight.check_files([path], REPO, tmp_path)


def test_a_config_that_opts_in_to_yte_is_flagged_and_not_dry_run(tmp_path, capsys):
    f = tmp_path / "yte.yaml"
    f.write_text("__use_yte__: true\nstudy: yt\n")
    prepared = preflight.check_files([f], REPO, tmp_path)
    assert prepared.yte == (str(f),) and prepared.study.name == "yt"
    assert "opts in to YTE templating" in capsys.readouterr().err


@pytest.mark.parametrize("content,words", BAD_FILES, ids=lambda x: str(x)[:30])
def test_a_hostile_config_file_is_refused_in_one_line(tmp_path, content, words):
    import tracemalloc

    f = tmp_path / "hostile.yaml"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as err:
            preflight.check_files([f], REPO, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = str(err.value)
    assert "\n" not in msg and str(f) in msg, msg
    for w in words:
        assert w in msg, msg
    assert peak < 50 * 1024 ** 2  # nothing expanded or allocated on the file's say-so


def test_the_size_check_estimates_without_allocating(tmp_path):
    """A billion categories are refused from the settings alone (it once allocated them: 15.7 GB)."""
    import tracemalloc

    cfg = _with(E, {"target": "categorical", "n": 10, "params": {"K": 1_000_000_000}})
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match="a job would hold about"):
            preflight.prepare(cfg, REPO, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 ** 2


def test_an_infinite_metric_stops_the_job_naming_generation_and_metric(tmp_path):
    """lam = 1e300 overflows the Gaussian's variance: the job stops, and no "inf" is written as a number."""
    from conftest import make_chain, run_blocks
    from ouroboros.jobs import NonFiniteMetric

    chain = make_chain(target="gaussian", regime="replace", n=10, replicates=4, generations=3, lam=1e300)
    with pytest.raises(NonFiniteMetric, match=r"generation \d+: metric \w+ is inf"):
        run_blocks(chain, tmp_path / "blocks", 3, 4)
    assert not list((tmp_path / "blocks").rglob("metrics.csv"))


@pytest.mark.e2e
@pytest.mark.parametrize("case", ["laughs", "twice", "empty"])
def test_snakemake_refuses_a_hostile_file_as_ouroboros_check_does(tmp_path, snakemake_run, case):
    content = {"laughs": _laughs(), "twice": "study: first\nstudy: second\n", "empty": ""}[case]
    f = tmp_path / "hostile.yaml"
    f.write_text(content)
    proc = snakemake_run(tmp_path, None, "--configfile", str(f), "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Traceback" not in out, out
    with pytest.raises(ConfigError):
        preflight.check_files([f], REPO, tmp_path)


@pytest.mark.e2e
@pytest.mark.parametrize("case", ["nan", "unknown", "size", "tracking", "yaml"])
def test_snakemake_refuses_before_any_job_in_one_line(tmp_path, snakemake_run, case):
    cfg = {"nan": _with(E + ["lam"], NAN), "unknown": _with(E + ["foo"], 1),
           "size": _with(["generations"], 1_000_000_000),
           "tracking": _with(["tracking", "uri"], f"sqlite:///{REPO / 'README.md'}/x/mlflow.db"),
           "yaml": None}[case]
    if cfg is None:
        (tmp_path / "broken.yaml").write_text("study: s\nexperiments: [\n")
        proc = snakemake_run(tmp_path, None, "--configfile", str(tmp_path / "broken.yaml"), "--cores", "1", check=False)
    else:
        proc = snakemake_run(tmp_path, cfg, "--cores", "1", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Traceback" not in out and "File \"" not in out, out
    assert not (tmp_path / "results").exists()
    if case != "yaml":  # Snakemake itself reads --configfile before the workflow starts (README, Reliability)
        errors = [line for line in out.splitlines() if line.startswith("Error: invalid config at ")]
        assert len(errors) == 1, out


@pytest.mark.e2e
@pytest.mark.parametrize("case", ["fifo", "device", "missing", "directory", "binary", "empty", "list", "syntax"])
def test_snakemake_refuses_a_config_file_it_would_read_itself_in_one_line(tmp_path, snakemake_run, case):
    """Snakemake opens --configfile before the workflow starts (a FIFO waited for ever, /dev/zero was read until
    memory ran out, a missing file or a folder was a traceback, an empty or list-valued one a bare WorkflowError):
    the logger plugin, imported as Snakemake builds its parser, refuses it first in the line ouroboros check gives."""
    path = {"device": Path("/dev/zero"), "directory": tmp_path / "folder"}.get(case, tmp_path / f"{case}.yaml")
    if case == "fifo":
        os.mkfifo(path)
    elif case == "directory":
        path.mkdir()
    elif case != "missing" and case != "device":
        path.write_bytes({"binary": b"\x7fELF\x02\x01\x01\x00\xd0\xff", "empty": b"", "list": b"- a\n- b\n",
                          "syntax": b"study: s\nexperiments: [\n"}[case])
    proc = snakemake_run(tmp_path / "work", None, "--configfile", str(path), "-n", check=False, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out and "WorkflowError" not in out, out
    assert [line for line in out.splitlines() if line.startswith("Error: ")] == [out.strip().splitlines()[-1]], out
    assert str(path) in out, out


def test_the_config_files_of_a_command_line_are_read_only_for_this_workflow(tmp_path):
    from ouroboros import cliargs

    ours = ["snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2", "--configfile", "a.yaml", "b.yaml", "-n"]
    assert cliargs.configfiles(ours, tmp_path) == [tmp_path / "a.yaml", tmp_path / "b.yaml"]
    assert cliargs.configfiles(["snakemake", f"--snakefile={REPO / 'Snakefile'}", "--configfile=c.yaml"],
                               tmp_path) == [tmp_path / "c.yaml"]
    assert cliargs.configfiles(["snakemake", "--configfile", "a.yaml"], REPO) == [REPO / "a.yaml"]  # ./Snakefile
    other = tmp_path / "Snakefile"
    other.write_text("rule all:\n")
    assert cliargs.configfiles(["snakemake", "--configfile", "a.yaml"], tmp_path) == []  # another workflow's
    assert cliargs.configfiles(ours + ["--mode", "remote"], tmp_path) == []  # a job step
    assert cliargs.configfiles(["snakemake", "-s", str(REPO / "Snakefile"), "-n"], tmp_path) == []
