import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def run_snakemake(workdir: Path, config: dict | None, *args: str, check: bool = True,
                  timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` on ``config`` (written to workdir/config.yaml)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    if config is not None:
        (workdir / "study.yaml").write_text(yaml.safe_dump(config))
        cmd += ["--configfile", str(workdir / "study.yaml")]
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def snakemake_log(workdir: Path) -> str:
    """Snakemake's log file of the last run in ``workdir``: its job stanzas and statistics (the console shows one
    line per finished generation instead, :mod:`ouroboros.console`)."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda f: f.stat().st_mtime_ns)
    assert logs, f"no Snakemake log file in {workdir}/.snakemake/log"
    return logs[-1].read_text()


@pytest.fixture
def snakemake_run():
    return run_snakemake


def make_chain(target="gaussian", params=None, regime="replace", rho=0.1, fresh=False, n=10, replicates=100,
               lam=1.0, seed=0, study="test", label="exp", generations=10, block=5, curation=None):
    from ouroboros.config import Chain, Experiment
    from ouroboros.regimes import make_regime
    from ouroboros.targets import make_target

    params = dict(params or {})
    make_target(target, params)  # fail early on bad params
    reg = make_regime(regime, rho=rho, fresh=fresh) if regime == "mix" else make_regime(regime)
    exp = Experiment(label=label, target=target, params=params, n=n, replicates=replicates, lam=lam,
                     generations=generations, block=block, regimes=(reg,), curation=curation)
    return Chain(study, exp, reg, seed)


def run_chain(chain, generations):
    """Run generations 0..G in memory; returns (per-generation metrics list, ChainRun)."""
    from ouroboros.chain import ChainRun
    from ouroboros.seeding import generator

    target = chain.experiment.make_target()
    real = target.real_data(chain.job.real_rng(), chain.job.n, chain.experiment.replicates)
    ref = target.reference(generator(chain.study, chain.experiment.label, "reference"))
    run = ChainRun(chain, real, ref)
    out = [run.step(t)[2] for t in range(generations + 1)]
    return out, run


def assert_shared_gen0(results: Path, client, experiment_id: str, exp: str, regimes: list[str], runs) -> None:
    """Generation 0 of a one-generation-per-job experiment is computed and tracked once per seed, shared by
    every regime: one gen0 folder beside the real data, none in the chains, and gen 1 of every chain has
    the shared model as its model input; each chain's own generation-0 run (its lineage's start) points at the
    shared model too, and logs no model of its own."""
    assert sorted(p.name for p in (results / exp / "seed0").iterdir() if not p.name.startswith(".")) == ["gen0", "real.npz"]
    for regime in regimes:
        assert not (results / exp / regime / "seed0" / "gen0" / "model").exists()
    gen0 = [r for r in runs if r.data.tags["ouroboros.chain"] == f"{exp}/seed0"]
    assert len(gen0) == 1 and gen0[0].data.tags["generation"] == "0"
    model = client.search_logged_models(experiment_ids=[experiment_id],
                                        filter_string=f"source_run_id = '{gen0[0].info.run_id}'")[0].model_id
    for regime in regimes:
        gen1 = next(r for r in runs if r.data.tags["ouroboros.chain"] == f"{exp}/{regime}/seed0"
                    and r.data.tags["generation"] == "1")
        assert [m.model_id for m in client.get_run(gen1.info.run_id).inputs.model_inputs] == [model]
        own = next(r for r in runs if r.data.tags["ouroboros.chain"] == f"{exp}/{regime}/seed0"
                   and r.data.tags["generation"] == "0")
        assert [m.model_id for m in client.get_run(own.info.run_id).inputs.model_inputs] == [model]
        assert own.data.tags["ouroboros.shared_run_id"] == gen0[0].info.run_id
        assert not client.search_logged_models(experiment_ids=[experiment_id],
                                               filter_string=f"source_run_id = '{own.info.run_id}'")


def curation_reference(chain, ref: Path):
    """The reference folder a chain's curation jobs read (None: its curation step reads none), as the rules pass
    it (the curation reference holds what the evaluation reference holds)."""
    cur = chain.job.curation()
    return ref if cur is not None and cur.reads_reference else None


def run_block_job(chain, spec: dict, a: int, b: int, real: Path, ref: Path, out: Path, state=None, models=()) -> list:
    """One block as the rules run it: the block job, then its evaluation job; returns the block's metric rows."""
    from ouroboros import jobs

    jobs.block(spec, a, b, real, curation_reference(chain, ref), state, list(models), out / "state.npz",
               out / "models.npz", out / "chain.csv")
    jobs.block_evaluate(spec, a, b, real, ref, out / "models.npz", out / "state.npz", out / "chain.csv",
                        out / "metrics.csv")
    return jobs.read_metrics(out / "metrics.csv")


def run_per_job(chain, folder: Path, generations: int) -> list:
    """Generations 0..G of a chain as the one-generation-per-job rules run them (train, generate, evaluate
    and, with curation, curate; one folder per generation), then the same as one block job.
    Returns (per-job metric rows, block metric rows)."""
    spec = chain.spec()
    rows = run_per_job_only(chain, folder, generations)
    return rows, run_block_job(chain, spec, 0, generations, folder / "real.npz", folder / "reference", folder / "block")


def run_per_job_only(chain, folder: Path, generations: int) -> list:
    """Generations 0..G of a chain as the one-generation-per-job rules run them; their metric rows."""
    from ouroboros import jobs

    spec = chain.spec()
    real, ref = folder / "real.npz", folder / "reference"
    jobs.real_data(chain.real_spec(), real)
    jobs.reference({k: spec[k] for k in ("study", "experiment", "target", "params")}, ref)
    curated = chain.experiment.curation is not None
    target = chain.experiment.make_target()
    rows = []
    for g in range(generations + 1):
        gdir = folder / f"gen{g}"
        gspec = chain.gen0_spec() if g == 0 else spec
        srcs = [folder / f"gen{j}" / ("curated" if curated else "samples") for j in chain.job.reads(g)]
        previous = folder / f"gen{g - 1}" / "model" if g and target.starts_from_previous() else None  # as the rule
        assert not target.backbone(), "a pretrained target fits from a backbone cache entry (see test_pretrained_lm)"
        jobs.train(gspec, g, real, srcs, gdir / "model", gdir / "trainset.json", None, previous)
        jobs.generate(gspec, g, gdir / "model", gdir / "samples")
        jobs.evaluate(gspec, g, gdir / "model", gdir / "samples", gdir / "trainset.json", real, ref,
                      folder / "gen0" / "model", gdir / "metrics.csv")
        rows += jobs.read_metrics(gdir / "metrics.csv")
        if curated:
            jobs.curate(spec, g, gdir / "samples", gdir / "model", folder / "gen0" / "model",
                        curation_reference(chain, ref), gdir / "curated", gdir / "curation.csv")
            rows += jobs.read_metrics(gdir / "curation.csv")
    return rows


def run_blocks(chain, folder: Path, generations: int, size: int) -> list:
    """Generations 0..G of a chain as block jobs of ``size`` generations (each with its evaluation job), each
    resumed from the previous block's state and the models.npz of the blocks holding the models the resume
    re-draws from (as the block rule passes them).  Returns the metric rows of every block, in order."""
    from ouroboros import jobs
    from ouroboros.blocks import plan_blocks

    spec = chain.spec()
    real, ref = folder / "real.npz", folder / "reference"
    jobs.real_data(chain.real_spec(), real)
    jobs.reference({k: spec[k] for k in ("study", "experiment", "target", "params")}, ref)
    rows, done = [], []
    for a, b in plan_blocks(generations, size):
        out = folder / f"gens{a}-{b}"
        state = str(folder / f"gens{done[-1][0]}-{done[-1][1]}" / "state.npz") if done else None
        wanted = chain.job.resume_models(a - 1) if a else []
        models = [str(folder / f"gens{x}-{y}" / "models.npz") for x, y in done if any(x <= j <= y for j in wanted)]
        rows += run_block_job(chain, spec, a, b, real, ref, out, state, models)
        done.append((a, b))
    return rows
