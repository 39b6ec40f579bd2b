# Paths, the study object and input functions shared by every stage.
import os
from pathlib import Path

from workflow.blocks import completed_blocks, plan_blocks
from workflow.config import ConfigError, Study, load_schema, put_checkout_on_pythonpath
from workflow.targets import target_class
from workflow.tracking import TrackingError, resolve_artifacts, resolve_uri

# Jobs import this checkout's `workflow` package also where it is not installed (`--use-conda`).
put_checkout_on_pythonpath(workflow.basedir)

try:
    STUDY = Study.from_config(config, schema=load_schema(Path(workflow.basedir) / "config" / "schema.yaml"), validated=True)
except ConfigError as e:
    raise WorkflowError(str(e)) from None

try:
    _uri = resolve_uri(config["tracking"]["uri"], os.getcwd())
except TrackingError as e:
    raise WorkflowError(f"invalid config at tracking.uri: {e}") from None
TRACKING = {
    "enabled": config["tracking"]["enabled"],
    "uri": _uri,
    "artifacts": resolve_artifacts(config["tracking"]["artifacts"], _uri, os.getcwd()),
    "every": config["tracking"]["every"],
}

RESULTS = f"results/{STUDY.name}"
LOGS = f"{RESULTS}/logs"
CHAIN = f"{RESULTS}/{{exp}}/{{regime}}/seed{{seed}}"
CHAIN_LOG = f"{LOGS}/{{exp}}/{{regime}}/seed{{seed}}"


wildcard_constraints:
    exp=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    regime=r"[a-z][a-z0-9.-]*",
    seed=r"\d+",
    gen=r"\d+",
    first=r"\d+",
    last=r"\d+",
    metric=r"[a-z0-9_]+",
    name=r"[a-z0-9_]+",


def chain_of(wildcards):
    return STUDY.chain(wildcards.exp, wildcards.regime, int(wildcards.seed))


def chain_dir(chain):
    return f"{RESULTS}/{chain.path}"


def chain_spec(wildcards):
    return chain_of(wildcards).spec()


def gpu_request(wildcards):
    """GPUs the chain's target will use, so `snakemake --resources gpu=N` bounds GPU jobs."""
    return chain_of(wildcards).target().gpus()


def real_path(chain):
    return f"{RESULTS}/{chain.experiment.label}/seed{chain.seed}/real.npz"


def reference_path(chain):
    return f"{RESULTS}/{chain.experiment.label}/reference"


def _first_chain(wildcards):
    chains = [c for c in STUDY.chains if c.experiment.label == wildcards.exp]
    seed = int(wildcards.get("seed", chains[0].seed))
    return next(c for c in chains if c.seed == seed)


def real_spec(wildcards):
    return _first_chain(wildcards).real_spec()


def reference_spec(wildcards):
    spec = real_spec(wildcards)
    return {k: spec[k] for k in ("study", "experiment", "target", "params")}


def blocks_of(chain):
    """The blocks of generations the chain runs as, reusing blocks already on disk."""
    e = chain.experiment
    return plan_blocks(e.generations, e.block, completed_blocks(chain_dir(chain)))


def block_dir(chain, first, last):
    return f"{chain_dir(chain)}/gens{first}-{last}"


def chain_metric_files(chain):
    e = chain.experiment
    if e.block == 1:
        return [f"{chain_dir(chain)}/gen{g}/metrics.csv" for g in range(e.generations + 1)]
    return [f"{block_dir(chain, a, b)}/metrics.csv" for a, b in blocks_of(chain)]


def train_inputs(wildcards):
    chain = chain_of(wildcards)
    sources = chain.regime.sources(int(wildcards.gen))
    return {"real": real_path(chain), "samples": [f"{chain_dir(chain)}/gen{j}/samples" for j in sources]}


def evaluate_inputs(wildcards):
    chain = chain_of(wildcards)
    here = f"{chain_dir(chain)}/gen{wildcards.gen}"
    return {"model": f"{here}/model", "samples": f"{here}/samples", "real": real_path(chain),
            "reference": reference_path(chain), "gen0": f"{chain_dir(chain)}/gen0/model"}


def blocks_before(chain, first):
    """The chain's planned blocks before generation ``first``; the last must end at first - 1."""
    plan = [b for b in blocks_of(chain) if b[1] < first]
    if not plan or plan[-1][1] != first - 1:
        raise WorkflowError(f"no block of {chain.path} ends at generation {first - 1}")
    return plan


def block_inputs(wildcards):
    chain = chain_of(wildcards)
    first = int(wildcards.first)
    inputs = {"real": real_path(chain), "reference": reference_path(chain)}
    if first == 0:
        return inputs
    plan = blocks_before(chain, first)
    inputs["state"] = f"{block_dir(chain, *plan[-1])}/state.npz"
    if chain.pool_keeps_points:
        inputs["models"] = [f"{block_dir(chain, a, b)}/models.npz" for a, b in plan]
    return inputs


def study_metrics():
    names = []
    for e in STUDY.experiments:
        for m in target_class(e.target).metrics:
            if m not in names:
                names.append(m)
    return names


def metric_description(wildcards):
    for e in STUDY.experiments:
        d = target_class(e.target).metrics.get(wildcards.metric)
        if d:
            return d
    return ""


def plot_experiments():
    return [{"label": e.label, "target": e.target, "params": e.params, "n": e.n, "lam": e.lam,
             "regimes": [{"kind": r.kind, "rho": r.rho, "fresh": r.fresh} for r in e.regimes]}
            for e in STUDY.experiments]


def plot_files():
    return [f"{RESULTS}/plots/{m}.png" for m in study_metrics()]


def chain_last_receipt(chain):
    e = chain.experiment
    if e.block == 1:
        return f"{chain_dir(chain)}/gen{e.generations}/tracking.json"
    return f"{block_dir(chain, *blocks_of(chain)[-1])}/tracking.json"


def track_block_inputs(wildcards):
    chain = chain_of(wildcards)
    first = int(wildcards.first)
    here = block_dir(chain, first, int(wildcards.last))
    inputs = {"experiment": f"{RESULTS}/tracking/experiment.json", "metrics": f"{here}/metrics.csv",
              "models": f"{here}/models.npz", "real": real_path(chain)}
    if first > 0:
        inputs["previous"] = f"{block_dir(chain, *blocks_before(chain, first)[-1])}/tracking.json"
    return inputs


def track_generation_inputs(wildcards):
    chain = chain_of(wildcards)
    g = int(wildcards.gen)
    here = f"{chain_dir(chain)}/gen{g}"
    inputs = {"experiment": f"{RESULTS}/tracking/experiment.json", "model": f"{here}/model",
              "samples": f"{here}/samples", "metrics": f"{here}/metrics.csv", "manifest": f"{here}/trainset.json",
              "real": real_path(chain)}
    if g > 0:
        inputs["previous"] = f"{chain_dir(chain)}/gen{g - 1}/tracking.json"
    return inputs


def grid_generations(chain, rows=8):
    """Up to ``rows`` generations, evenly spaced from 0 to G."""
    g = chain.experiment.generations
    return sorted({round(i * g / (rows - 1)) for i in range(rows)}) if g >= rows else list(range(g + 1))


def image_chains():
    return [c for c in STUDY.chains if c.experiment.block == 1 and c.target().image_shape]


def sample_grid_inputs(wildcards):
    chain = chain_of(wildcards)
    return [f"{chain_dir(chain)}/gen{g}/samples" for g in grid_generations(chain)]


def sample_grid_files():
    return [f"{RESULTS}/plots/samples/{c.path}.png" for c in image_chains()]


def distribution_experiments():
    """Experiments whose target keeps per-item distributions (one generation per job only)."""
    return [e for e in STUDY.experiments if e.block == 1 and target_class(e.target).distributions]


def distribution_files():
    return [f"{RESULTS}/plots/distributions/{e.label}/{name}.png"
            for e in distribution_experiments() for name in target_class(e.target).distributions]


def distribution_groups(wildcards):
    """One {regime, generation, files} per regime and generation of the experiment; files over seeds."""
    exp = next(e for e in STUDY.experiments if e.label == wildcards.exp)
    chains = [c for c in STUDY.chains if c.experiment.label == exp.label]
    return [{"regime": r.label, "generation": g,
             "files": [f"{chain_dir(c)}/gen{g}/distributions.npz" for c in chains if c.regime == r]}
            for r in exp.regimes for g in range(exp.generations + 1)]


def distribution_inputs(wildcards):
    return [f for group in distribution_groups(wildcards) for f in group["files"]]


def distribution_description(wildcards):
    exp = next(e for e in STUDY.experiments if e.label == wildcards.exp)
    return target_class(exp.target).distributions.get(wildcards.name, "")


def final_outputs():
    outputs = [f"{RESULTS}/metrics.csv"] + plot_files() + sample_grid_files() + distribution_files()
    if TRACKING["enabled"]:
        outputs.append(f"{RESULTS}/tracking/study.json")
    return outputs
