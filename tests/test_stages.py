"""Caching that holds: every setting declares the stage it changes, and a changed setting re-runs only the jobs of
its stage and what reads their outputs (README, "What a change re-runs").

The end-to-end test runs a tiny study holding every registered target (one generation per job, and in blocks where
the target allows), then asks Snakemake's dry run what a change of one kind would run: an evaluate-only change
schedules no train, generate, curate or block job; a sample-only change no generation-0 training; a change of a
setting no result depends on (threads, limits) nothing.  A target registered without a row in ``TARGETS`` fails.
The pretrained backbone's case (an evaluate change re-runs no conversion, training or sampling) is held in
``tests/test_pretrained_lm.py::test_pretrained_study_through_snakemake_both_inits_beam_and_lora``.
"""
import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from ouroboros.config import SPEC_STAGES, ChainSpec
from ouroboros.curation import SCORERS, SELECTORS, scorer_class, selector_class
from ouroboros.regimes import REGISTRY as REGIMES
from ouroboros.regimes import regime_class
from ouroboros.settings import EACH, NO_STAGE, STAGES, undeclared_stages
from ouroboros.targets import REGISTRY, target_class

REPO = Path(__file__).resolve().parents[1]


def _config_schema():
    return yaml.safe_load((REPO / "config" / "schema.yaml").read_text())


def test_every_setting_of_every_kind_declares_its_stage():
    missing = []
    for name in REGISTRY:
        missing += undeclared_stages(target_class(name).params_schema, f"target {name}: ")
    for name in REGIMES:
        missing += undeclared_stages(regime_class(name).settings_schema, f"regime {name}: ")
    for name in SELECTORS:
        missing += undeclared_stages(selector_class(name).settings_schema, f"selector {name}: ")
    for name in SCORERS:
        missing += undeclared_stages(scorer_class(name).settings_schema, f"scorer {name}: ")
    schema = _config_schema()
    missing += undeclared_stages(schema, "config: ")
    missing += undeclared_stages(schema["$defs"]["experiment"], "config experiments[]: ")
    assert not missing, f"settings without a stage ({', '.join((*STAGES, NO_STAGE, EACH))}): {missing}"


def test_a_forgotten_stage_is_found():
    from ouroboros.settings import settings_schema, stage_of

    schema = settings_schema({"a": {"type": "integer", "stage": "fit"}, "b": {"type": "integer"},
                              "c": {"type": "integer", "stage": "later"}})
    assert undeclared_stages(schema) == ["b", "c"]
    assert stage_of(schema, "b") == "data"  # what an undeclared setting is taken as: it re-runs everything
    assert undeclared_stages(settings_schema({"x": {}}, stage="sample")) == []


def test_the_chain_spec_stages_are_the_config_keys_stages():
    experiment = _config_schema()["$defs"]["experiment"]["properties"]
    of_key = {"experiment": "name", "stream": "streams", "regime": "regimes"}
    for field, stage in SPEC_STAGES.items():
        key = of_key.get(field, field)
        if key in experiment:
            assert experiment[key]["stage"] == stage, field
    assert _config_schema()["properties"]["study"]["stage"] == SPEC_STAGES["study"]


def test_a_job_carries_its_stage_and_the_stages_before_it():
    from conftest import make_chain

    chain = make_chain("lm", {"repetition_n": 3, "temperature": 0.9, "lr": 1e-3, "threads": 2}, replicates=1)
    parts = chain.job.by_stage()
    assert parts["evaluate"]["params"]["repetition_n"] == 3 and "repetition_n" not in json.dumps(parts["fit"])
    assert parts["sample"]["params"]["temperature"] == 0.9 and parts["sample"]["lam"] == 1.0
    assert parts["fit"]["params"]["lr"] == 1e-3 and parts["fit"]["regime"] == {"kind": "replace"}
    assert "threads" not in json.dumps(parts)  # no result depends on it
    assert list(chain.job.upto("fit")) == ["data", "fit"]
    assert ChainSpec.from_params(chain.spec()).by_stage() == parts
    # the order a study file lists settings in changes no param
    other = make_chain("lm", {"threads": 2, "lr": 1e-3, "temperature": 0.9, "repetition_n": 3}, replicates=1)
    assert repr(other.job.by_stage()) == repr(parts)


class _Recording(dict):
    """A settings mapping that records every key read."""

    def __init__(self, settings):
        super().__init__(settings)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


#: small settings of every target whose ``reference`` makes something (the others' is empty)
REFERENCE = {"gmm": [{"components": 2, "truth": "blob", "eval_size": 200}],
             "vae": [{"judge_epochs": 1, "device": "cpu"}],
             "lm": [{"seq_len": 8, "prompt_len": 8, "block_size": 32}],
             "diffusion": [{"data": "digits", "judge_epochs": 1, "device": "cpu"},
                           {"data": "gmm", "truth": "blob", "eval_size": 200, "device": "cpu"}]}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_the_reference_reads_data_settings_and_those_it_declares(name):
    """The reference job's rerun depends on the target's data settings and its ``reference_settings``: what
    ``reference`` reads of the others must be among those (read through the settings mapping)."""
    import numpy as np

    from ouroboros.settings import stage_of
    from ouroboros.targets import make_target

    cls = target_class(name)
    for params in REFERENCE.get(name, [{}]):
        t = make_target(name, params)
        t.params = recording = _Recording(t.params)
        if hasattr(t, "p"):
            t.p = recording
        out = t.reference(np.random.default_rng(0))
        later = {k for k in recording.read if stage_of(cls.params_schema, k) != "data"}
        assert later <= set(cls.reference_settings), (name, params, later - set(cls.reference_settings))
        assert out or name not in REFERENCE


# -- end to end ---------------------------------------------------------------------------------------------
#: target -> (experiments of the tiny study, {stage: (experiment, setting, new value)}); an experiment's setting
#: key is a target setting, or ``lam``
TARGETS = {
    "gaussian": ([{"name": "gauss", "target": "gaussian", "n": 20, "replicates": 20, "block": 1}],
                 {"sample": ("gauss", "method", "sample")}),
    "gmm": ([{"name": "gmm", "target": "gmm", "n": 40, "block": 1, "params": {"components": 2, "truth": "blob",
                                                                          "eval_size": 200, "test_size": 50}},
             {"name": "gmm-blocks", "target": "gmm", "n": 40, "block": 2,
              "params": {"components": 2, "truth": "blob", "eval_size": 200, "test_size": 50}}],
            {"evaluate": ("gmm-blocks", "eval_size", 300), "sample": ("gmm", "lam", 0.9)}),
    "categorical": ([{"name": "cat", "target": "categorical", "n": 30, "replicates": 10, "block": 1,
                      "params": {"K": 5}}],
                    {"evaluate": ("cat", "tail_mass", 0.2), "sample": ("cat", "method", "sample")}),
    "linreg": ([{"name": "linreg", "target": "linreg", "n": 20, "replicates": 5, "block": 1, "params": {"d": 3}}],
               {"sample": ("linreg", "lam", 0.9)}),
    "kde": ([{"name": "kde", "target": "kde", "n": 20, "replicates": 4, "block": 2, "params": {"test_size": 30}}],
            {"sample": ("kde", "lam", 0.9)}),
    "vae": ([{"name": "vae", "target": "vae", "n": 150,
              "params": {"epochs": 1, "judge_epochs": 1, "iwae_k": 2, "batch_size": 64, "device": "cpu",
                         "eval_max": 100}}],
            {"evaluate": ("vae", "iwae_k", 3), "sample": ("vae", "emit", "sample"), "none": ("vae", "threads", 2)}),
    "lm": ([{"name": "lm", "target": "lm", "n": 30,
             "params": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 32, "seq_len": 8, "prompt_len": 8,
                        "max_steps": 3, "batch_size": 8, "device": "cpu", "gen_batch": 32}},
           ],
           {"evaluate": ("lm", "repetition_n", 3), "sample": ("lm", "temperature", 0.9),
            "none": ("lm", "log_every", 7)}),
    "diffusion": ([{"name": "img", "target": "diffusion", "n": 60,
                    "params": {"data": "digits", "channels": [8, 16], "norm_groups": 4, "train_steps": 3,
                               "batch_size": 16, "steps": 2, "judge_epochs": 1, "device": "cpu", "eval_max": 60}},
                   {"name": "pts", "target": "diffusion", "n": 40, "block": 2,
                    "params": {"data": "gmm", "truth": "blob", "train_steps": 5, "eval_size": 200, "test_size": 50,
                               "eval_samples": 50, "hidden": 8, "depth": 1, "steps": 2, "device": "cpu"}}],
                  {"evaluate": ("pts", "eval_samples", 60), "sample": ("img", "steps", 3),
                   "none": ("img", "threads", 2)}),
}
#: what each kind of change may re-run: rules always allowed, and the rules (or generation-0 jobs) never allowed
NEVER = {"evaluate": {"train", "generate", "curate", "block", "real_data", "backbone", "curation_reference"},
         "sample": {"real_data", "backbone", "train@gen0"}}
#: what the test runs: the study's metrics table (not its plots)
TABLE = "results/stages/metrics.csv"


def _study() -> dict:
    exps = [copy.deepcopy(e) for exps, _ in TARGETS.values() for e in exps]
    return {"study": "stages", "tracking": {"enabled": False}, "seeds": [0], "generations": 1,
            "experiments": [dict({"regimes": [{"kind": "mix", "rho": 0.5}]}, **e) for e in exps]}


def _changed(study: dict, changes) -> dict:
    out = copy.deepcopy(study)
    for exp, key, value in changes:
        e = next(x for x in out["experiments"] if x["name"] == exp)
        if key == "lam":
            e["lam"] = value
        else:
            e.setdefault("params", {})[key] = value
    return out


def _scheduled(work: Path, config: dict, snakemake_run) -> list[tuple[str, str]]:
    """(rule, output) of every job the dry run would run."""
    proc = snakemake_run(work, config, "-n", TABLE)
    jobs = re.findall(r"^\s*(?:local)?rule (\w+):\n\s+(?:input: .*\n\s+)?output: (\S+)", proc.stdout, flags=re.M)
    if not jobs:
        assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]
    return jobs


@pytest.mark.e2e
def test_a_changed_setting_reruns_only_its_stage_for_every_target(tmp_path, snakemake_run):
    assert set(TARGETS) == set(REGISTRY), "add a row to TARGETS for every registered target"
    work = tmp_path / "work"
    study = _study()
    snakemake_run(work, study, "--cores", "2", TABLE)
    assert _scheduled(work, study, snakemake_run) == []

    for stage in ("evaluate", "sample"):
        changes = [c[stage] for _, c in TARGETS.values() if stage in c]
        jobs = _scheduled(work, _changed(study, changes), snakemake_run)
        forbidden = [(rule, out) for rule, out in jobs
                     if rule in NEVER[stage] or (f"{rule}@gen0" in NEVER[stage] and "/gen0/" in out)]
        assert not forbidden, f"a {stage} change {changes} re-runs {forbidden}"
        changed = {exp for exp, _, _ in changes}
        ran = {out.split("/")[2] for rule, out in jobs if rule in ("train", "block", "evaluate", "block_evaluate")}
        assert ran == changed, (stage, ran, changed)  # what the change touches re-runs; nothing else

    # nothing depends on threads, logging or the study's limits
    nothing = [c["none"] for _, c in TARGETS.values() if "none" in c]
    changed = _changed(study, nothing)
    changed["limits"] = {"jobs": 5000}
    assert _scheduled(work, changed, snakemake_run) == []
