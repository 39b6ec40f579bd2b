"""The typed plan: the units the rules schedule and the tracking jobs log, and their exact round trips."""
import json
import os

import pytest
import yaml

from conftest import REPO
from ouroboros import paths, plan
from ouroboros.config import Study


@pytest.fixture(scope="module")
def study():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    return Study.from_config(config)


def test_every_tracking_unit_round_trips_exactly_through_its_params(study):
    groups = plan.tracking_groups(study, chains_per_job=16, every=10, parent_points=1000)
    units = [u for us in groups.values() for u in us]
    assert {type(u) for u in units} == {plan.BlockUnit, plan.GenerationUnit}
    for unit in units:
        params = json.loads(json.dumps(unit.to_params()))  # as plain JSON, the way params travel
        assert plan.unit_from_params(params) == unit
        assert unit.real in unit.files()
    with pytest.raises(ValueError, match="kind 'nope'"):
        plan.unit_from_params({"kind": "nope"})
    with pytest.raises(ValueError, match="not a block unit"):
        plan.unit_from_params({"kind": "block", "spec": {}})


def test_one_generation_per_job_groups_start_at_the_shared_generation_0(study):
    groups = plan.tracking_groups(study, chains_per_job=16, every=10, parent_points=1000)
    vae = groups["vae-seed0"]
    assert vae[0].shared and vae[0].gen == 0 and vae[0].dir == paths.gen0_dir("default", "vae", 0)
    assert [u.gen for u in vae] == [0] + [1, 2, 3, 4] * 3  # replace, mix and accumulate
    assert not any(u.shared for u in vae[1:])
    first = next(u for u in vae if u.gen == 1)
    assert paths.GenerationFiles(vae[0].dir).metrics in first.extra  # generation 0's rows logged with each chain
    gaussian = groups["gaussian-chains0"]
    assert all(isinstance(u, plan.BlockUnit) for u in gaussian) and len({json.dumps(u.spec) for u in gaussian}) == 12
    assert gaussian[0].generations == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]


def test_generation_folders_and_benchmarks_sit_in_the_node(study):
    chain = study.chain("vae", "replace", 0)
    assert plan.generation_files(chain, 0).model == "results/default/vae/seed0/gen0/model"
    assert plan.generation_files(chain, 2).trainset == "results/default/vae/replace/seed0/gen2/trainset.json"
    assert plan.curation_files(chain, 0).curated == "results/default/vae/replace/seed0/gen0/curated"
    assert plan.job_benchmarks(chain, 0)["train"] == "results/default/logs/vae/seed0/gen0/train.benchmark.tsv"
    assert paths.parse_node(paths.node("mix-rho0.1", 3)) == ("mix-rho0.1", 3)
    assert paths.parse_node(paths.node(None, 2)) == (None, 2)


@pytest.mark.parametrize("name", ["config.yaml", "studies/curation-gaussian.yaml", "studies/mad-fresh.yaml",
                                  "studies/wright-fisher.yaml", "studies/gerstgrasser-linreg.yaml"])
def test_a_chain_spec_round_trips_exactly_through_its_params(name):
    """What a job gets is a ChainSpec, not a placeholder experiment: to_params / from_params are exact inverses
    (through JSON too), and generation 0's spec is the same for every regime of an experiment."""
    from ouroboros.config import ChainSpec

    study = Study.from_config(yaml.safe_load((REPO / "config" / name).read_text()))
    for chain in study.chains:
        params = json.loads(json.dumps(chain.spec()))
        job = ChainSpec.from_params(params)
        assert job == chain.job and job.to_params() == chain.spec()
        assert job.emit_parts(0) == chain.experiment.gen0_parts() and job.n_candidates == chain.job.n_candidates
        assert ChainSpec.from_params(chain.gen0_spec()) == chain.job.gen0()
    for e in study.experiments:
        gen0 = {json.dumps(c.gen0_spec(), sort_keys=True) for c in study.chains if c.experiment is e and c.seed == 0}
        assert len(gen0) == 1
    with pytest.raises(ValueError, match=r"missing \['seed'\]"):
        ChainSpec.from_params({k: v for k, v in study.chains[0].spec().items() if k != "seed"})


def test_a_job_rebuilds_the_workflows_plan_from_its_config_without_rechecking_it(tmp_path):
    """Rules pass digests; collect, plot and tracking jobs rebuild their share from the config Snakemake hands
    them (``Plan.for_job``), the same share, without the targets' run checks (the VAE's loads its data)."""
    import copy
    import types

    from ouroboros import preflight

    config = preflight.merge({}, preflight.load_yaml(REPO / "config/config.yaml"))
    prepared = preflight.prepare(config, REPO, tmp_path)
    built = plan.Plan(prepared.study, prepared.tracking, prepared.sweep_plots)
    job = types.SimpleNamespace(config=copy.deepcopy(config), scriptdir=str(REPO / "scripts"))
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the job runs where the workflow runs (the tracking URI resolves against it)
    try:
        again = plan.Plan.for_job(job)
    finally:
        os.chdir(cwd)
    assert again.collect_args() == built.collect_args()
    assert again.plot_experiments() == built.plot_experiments()
    assert {g: again.group_units(g) for g in again.tracking_groups} == {g: built.group_units(g) for g in built.tracking_groups}
    assert plan.Plan.digest(again.collect_args()) == plan.Plan.digest(built.collect_args())


@pytest.mark.parametrize("init", ["pretrained", "previous"])
def test_pretrained_train_jobs_read_the_backbone_and_with_init_previous_the_last_model(init, tmp_path):
    pytest.importorskip("transformers")
    from tiny_hf import make_tiny_llama

    from ouroboros import backbones

    model = str(make_tiny_llama(tmp_path / "llama"))
    config = {"study": "hf", "seeds": [0], "generations": 2,
              "experiments": [{"name": "lm", "target": "lm", "n": 10, "regimes": ["replace"],
                               "params": {"backbone": "pretrained", "model": model, "init": init, "seq_len": 8,
                                          "prompt_len": 8, "block_size": 16}},
                              {"name": "lm2", "target": "lm", "n": 10, "regimes": ["replace"],
                               "params": {"backbone": "pretrained", "model": model, "seq_len": 8, "prompt_len": 8,
                                          "block_size": 16, "decoding": "beam"}}]}
    study = Study.from_config(config)
    p = plan.Plan(study, {"enabled": False}, [])
    chain = study.chain("lm", "replace", 0)
    entry = backbones.entry(model)
    assert entry.startswith("results/backbones/llama-") and p.backbones == {entry.split("/")[-1]: model}
    gen0 = p.train_inputs(chain, 0)
    assert gen0["backbone"] == entry and "previous" not in gen0 and "reference" not in gen0
    gen2 = p.train_inputs(chain, 2)
    assert gen2["backbone"] == entry == p.train_inputs(study.chain("lm2", "replace", 0), 1)["backbone"]
    assert gen2.get("previous") == (plan.generation_files(chain, 1).model if init == "previous" else None)
    assert p.train_inputs(chain, 1).get("previous") == (
        "results/hf/lm/seed0/gen0/model" if init == "previous" else None)
    assert p.reference_inputs("lm") == {"backbone": entry}
    scratch = Study.from_config(dict(config, experiments=[dict(config["experiments"][0], params={})]))
    assert "backbone" not in plan.Plan(scratch, {"enabled": False}, []).train_inputs(scratch.chain("lm", "replace", 0), 1)
