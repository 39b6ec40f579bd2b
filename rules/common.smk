# The study object, output patterns (spelled once, in ouroboros.paths) and input functions shared by every stage.
import os
from pathlib import Path

from ouroboros import paths, plan
from ouroboros.config import ConfigError, put_package_on_pythonpath
from ouroboros.curation import METRICS as CURATION_METRICS
from ouroboros.preflight import prepare
from ouroboros.sweeps import STATISTICS as SWEEP_STATISTICS
from ouroboros.targets import target_class

# Jobs import this checkout's `ouroboros` package (workflow/ouroboros) also where it is not installed (`--use-conda`).
put_package_on_pythonpath(workflow.basedir)

try:
    _CLI_CONFIGS = [str(f) for f in workflow.overwrite_configfiles]  # they override the Snakefile's configfile
    _PREPARED = prepare(config, workflow.basedir, os.getcwd(),
                        [str(f) for f in workflow.configfiles if str(f) not in _CLI_CONFIGS] + _CLI_CONFIGS)
except ConfigError as e:
    import sys
    print(f"Error: {e}", file=sys.stderr)
    sys.exit(1)
STUDY = _PREPARED.study
SWEEP_PLOTS = _PREPARED.sweep_plots
TRACKING = _PREPARED.tracking
# what a tracking job needs to find (or create) the study's experiment
TRACKING_STUDY = {"study": STUDY.name, "uri": TRACKING["uri"], "artifacts": TRACKING["artifacts"],
                  "description": config["description"]}

S = STUDY.name
LOGS = paths.logs(S)
# output patterns of the rules: a generation's folder in its node ({regime}/seed{s}, or seed{s} for the shared
# generation 0), a chain's curated data, a block
CHAIN_LOG = paths.chain_log_dir(S, "{exp}", "{regime}", "{seed}")
GEN = paths.GenerationFiles(paths.node_gen_dir(S, "{exp}", "{node}", "{gen}"))
GEN_LOG = paths.node_log_dir(S, "{exp}", "{node}", "{gen}")
SEED_LOG = paths.seed_log_dir(S, "{exp}", "{seed}")
BLOCK = paths.block(S, "{exp}", "{regime}", "{seed}", "{first}", "{last}")
CURATED = paths.curation(S, "{exp}", "{regime}", "{seed}", "{cgen}")


wildcard_constraints:
    exp=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    node=paths.NODE_PATTERN,
    regime=r"[a-z][a-z0-9.-]*",
    seed=r"\d+",
    gen=r"\d+",
    cgen=r"\d+",
    first=r"\d+",
    last=r"\d+",
    metric=r"[a-z0-9_]+",
    name=r"[a-z0-9_]+",
    sweep=r"[a-z0-9][a-z0-9_-]*",
    group=r"[A-Za-z0-9][A-Za-z0-9_.+-]*-(seed|chains)\d+",


def chain_of(wildcards):
    return STUDY.chain(wildcards.exp, wildcards.regime, int(wildcards.seed))


def first_chain(wildcards):
    """The experiment's first chain of the seed (what generation 0 and the real data are made from)."""
    chains = [c for c in STUDY.chains if c.experiment.label == wildcards["exp"]]
    seed = int(wildcards.get("seed", chains[0].seed))
    return next(c for c in chains if c.seed == seed)


def chain_spec(wildcards):
    return chain_of(wildcards).spec()


def generation_chain(wildcards):
    """(chain, generation) of a generation folder: generation g >= 1 of the node's chain, or the shared
    generation 0 of the seed (made from the experiment's first chain of the seed)."""
    regime, seed = paths.parse_node(wildcards.node)
    gen = int(wildcards.gen)
    if (regime is None) != (gen == 0):
        raise WorkflowError(f"no generation {gen} in {wildcards.exp}/{wildcards.node}: generation 0 lies in the "
                            "shared seed{s} folder, later ones in {regime}/seed{s}")
    if gen == 0:
        return first_chain({"exp": wildcards.exp, "seed": seed}), 0
    return STUDY.chain(wildcards.exp, regime, seed), gen


def generation_spec(wildcards):
    chain, gen = generation_chain(wildcards)
    return chain.gen0_spec() if gen == 0 else chain.spec()


def generation_gpus(wildcards):
    return generation_chain(wildcards)[0].target().gpus()


def gpu_request(wildcards):
    """GPUs the chain's target will use, so `snakemake --resources gpu=N` bounds GPU jobs."""
    return chain_of(wildcards).target().gpus()


def block_threads(wildcards):
    """Threads a block job can use: its target cuts large draws into chunks run on threads (the same numbers
    whatever the count; Snakemake scales this down to --cores)."""
    chain = chain_of(wildcards)
    return chain.target().threads(chain.n_candidates, chain.experiment.replicates)


def real_path(chain):
    return paths.real_data(S, chain.experiment.label, chain.seed)


def reference_path(chain):
    return paths.reference_dir(S, chain.experiment.label)


def real_spec(wildcards):
    return first_chain(wildcards).real_spec()


def reference_spec(wildcards):
    spec = real_spec(wildcards)
    return {k: spec[k] for k in ("study", "experiment", "stream", "target", "params")}


def blocks_of(chain):
    return plan.blocks(chain)


block_files = plan.block_files


generation_files = plan.generation_files


curation_files = plan.curation_files


def chain_metric_files(chain):
    e = chain.experiment
    if e.block == 1:
        files = [generation_files(chain, g).metrics for g in range(e.generations + 1)]
        if e.curation is not None:
            files += [curation_files(chain, g).curation_metrics for g in range(e.generations + 1)]
        return files
    return [block_files(chain, a, b).metrics for a, b in blocks_of(chain)]


def synthetic_dir(chain, j):
    """Where generation j's synthetic data for this chain lie: its curated folder, or the drawn samples."""
    if chain.experiment.curation is not None:
        return curation_files(chain, j).curated
    return generation_files(chain, j).samples


def train_inputs(wildcards):
    chain, gen = generation_chain(wildcards)
    return {"real": real_path(chain), "samples": [synthetic_dir(chain, j) for j in chain.reads(gen)]}


def evaluate_inputs(wildcards):
    chain, gen = generation_chain(wildcards)
    here = generation_files(chain, gen)
    return {"model": here.model, "samples": here.samples, "real": real_path(chain),
            "reference": reference_path(chain), "gen0": generation_files(chain, 0).model}


def curate_inputs(wildcards):
    chain = chain_of(wildcards)
    here = generation_files(chain, int(wildcards.cgen))
    return {"samples": here.samples, "model": here.model, "gen0": generation_files(chain, 0).model,
            "reference": reference_path(chain)}


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
    inputs["state"] = block_files(chain, *plan[-1]).state
    wanted = chain.resume_models(first - 1)
    if wanted:
        inputs["models"] = [block_files(chain, a, b).models for a, b in plan if any(a <= j <= b for j in wanted)]
    return inputs


def study_metrics():
    names = []
    for e in STUDY.experiments:
        for m in target_class(e.target).metrics:
            if m not in names:
                names.append(m)
    for e in STUDY.experiments:
        cur = e.make_curation()
        names += [m for m in (cur.metric_names() if cur else []) if m not in names]
    return names


def describe_metric(metric):
    if metric in CURATION_METRICS:
        return CURATION_METRICS[metric]
    for e in STUDY.experiments:
        d = target_class(e.target).metrics.get(metric)
        if d:
            return d
    return ""


def metric_targets(metric):
    """The targets (or "curation") that report a metric, in study order: the report's subcategory."""
    if metric in CURATION_METRICS:
        return "curation"
    names = [e.target for e in STUDY.experiments if metric in target_class(e.target).metrics]
    return ", ".join(dict.fromkeys(names)) or "other"


def metric_unit(wildcards):
    for e in STUDY.experiments:
        unit = target_class(e.target).units.get(wildcards.metric)
        if unit:
            return unit
    return ""


def metric_labels(wildcards):
    return {"target": metric_targets(wildcards.metric), "metric": wildcards.metric}


def metric_description(wildcards):
    return describe_metric(wildcards.metric)


def plot_experiments():
    return [{"label": e.label, "name": e.name, "target": e.target, "params": e.params, "n": e.n, "lam": e.lam,
             "generations": e.generations, "curation": e.curation, "regimes": [r.to_spec() for r in e.regimes]}
            for e in STUDY.experiments]


def sweep_plot_files():
    return [f for name in SWEEP_PLOTS for f in (paths.sweep_plot(S, name), paths.sweep_table(S, name))]


def plot_files():
    return [paths.plot(S, m) for m in study_metrics()]


def tracking_group_names():
    return list(TRACKING_GROUPS)


def track_group_inputs(wildcards):
    return {"files": sorted({f for u in TRACKING_GROUPS[wildcards.group] for f in u.files()})}


def track_group_units(wildcards):
    return [u.to_params() for u in TRACKING_GROUPS[wildcards.group]]


def grid_generations(chain, rows=8):
    """Up to ``rows`` generations, evenly spaced from 0 to G."""
    g = chain.experiment.generations
    return sorted({round(i * g / (rows - 1)) for i in range(rows)}) if g >= rows else list(range(g + 1))


def image_chains():
    return [c for c in STUDY.chains if c.experiment.block == 1 and c.target().image_shape]


def sample_grid_inputs(wildcards):
    chain = chain_of(wildcards)
    return [generation_files(chain, g).samples for g in grid_generations(chain)]


def sample_grid_files():
    return [paths.sample_grid(S, c.experiment.label, c.regime.label, c.seed) for c in image_chains()]


def distribution_experiments():
    """Experiments whose target keeps per-item distributions (one generation per job only)."""
    return [e for e in STUDY.experiments if e.block == 1 and target_class(e.target).distributions]


def distribution_files():
    return [paths.distribution_plot(S, e.label, name)
            for e in distribution_experiments() for name in target_class(e.target).distributions]


def distribution_groups(wildcards):
    """One {regime, generation, files} per regime and generation of the experiment; files over seeds."""
    exp = next(e for e in STUDY.experiments if e.label == wildcards.exp)
    chains = [c for c in STUDY.chains if c.experiment.label == exp.label]
    return [{"regime": r.label, "generation": g,
             "files": [generation_files(c, g).distributions for c in chains if c.regime == r]}
            for r in exp.regimes for g in range(exp.generations + 1)]


def distribution_inputs(wildcards):
    return sorted({f for group in distribution_groups(wildcards) for f in group["files"]})


def distribution_description(wildcards):
    exp = next(e for e in STUDY.experiments if e.label == wildcards.exp)
    return target_class(exp.target).distributions.get(wildcards.name, "")


def final_outputs():
    outputs = [paths.metrics_table(S)] + plot_files() + sweep_plot_files() + sample_grid_files() + distribution_files()
    if TRACKING["enabled"]:
        outputs.append(paths.tracking_study(S))
    return outputs


def closing_line():
    """Where the results are, printed when the workflow ends well."""
    configs = "".join(f" --configfile {os.path.relpath(f)}" for f in workflow.overwrite_configfiles)
    lines = [f"Study {S} is done: table {paths.metrics_table(S)}, plots {paths.results(S)}/plots/",
             f"  report: snakemake --report {paths.results(S)}/report.html{configs}"]
    if TRACKING["enabled"]:
        lines.append(f"  MLflow: mlflow ui --backend-store-uri {TRACKING['uri']} --port 5000")
    return "\n".join(lines)


TRACKING_GROUPS = (plan.tracking_groups(STUDY, TRACKING["chains_per_job"], TRACKING["every"], TRACKING["parent_points"])
                   if TRACKING["enabled"] else {})
