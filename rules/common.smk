# Snakemake glue: the validated study as a plan (ouroboros.plan), the rules' output patterns (spelled once, in
# ouroboros.paths) and input functions that turn wildcards into calls of the plan.
import os

from ouroboros import paths
from ouroboros.config import ConfigError, put_package_on_pythonpath
from ouroboros.logs import when_nothing_to_do
from ouroboros.plan import Plan
from ouroboros.preflight import prepare
from ouroboros.sweeps import STATISTICS as SWEEP_STATISTICS

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
PLAN = Plan(STUDY, TRACKING, SWEEP_PLOTS)
# what a tracking job needs to find (or create) the study's experiment
TRACKING_STUDY = {"study": STUDY.name, "uri": TRACKING["uri"], "artifacts": TRACKING["artifacts"],
                  "description": config["description"], "claims": config.get("claims", "")}

S = STUDY.name
LOGS = paths.logs(S)
# output patterns: a generation's folder in its node ({regime}/seed{s}, or seed{s} for the shared generation 0),
# a chain's curated data, a block
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
    target="|".join(PLAN.targets()),
    name=r"[a-z0-9_]+",
    sweep=r"[a-z0-9][a-z0-9_-]*",
    group=r"[A-Za-z0-9][A-Za-z0-9_.+-]*-(seed|chains)\d+",


# -- chains by wildcards ----------------------------------------------------------------------------------
def chain_of(w):
    return PLAN.chain(w.exp, w.regime, w.seed)


def generation_of(w):
    return PLAN.generation(w.exp, w.node, w.gen)


def chain_spec(w):
    return chain_of(w).spec()


def generation_spec(w):
    return PLAN.spec(*generation_of(w))


def gpu_request(w):
    """GPUs the chain's target will use, so `snakemake --resources gpu=N` bounds GPU jobs."""
    return chain_of(w).target().gpus()


def generation_gpus(w):
    return generation_of(w)[0].target().gpus()


def _threads(chain):
    return chain.target().threads(chain.n_candidates, chain.experiment.replicates)


def block_threads(w):
    """Threads a chain's job can use: a target that cuts large draws into chunks runs them on threads (the same
    numbers whatever the count); a torch target's `threads` setting.  Snakemake scales this down to --cores."""
    return _threads(chain_of(w))


def generation_threads(w):
    return _threads(generation_of(w)[0])


# -- inputs and params ------------------------------------------------------------------------------------
def real_spec(w):
    return PLAN.real_spec(w.exp, w.get("seed"))


def reference_spec(w):
    return PLAN.reference_spec(w.exp)


def train_inputs(w):
    return PLAN.train_inputs(*generation_of(w))


def evaluate_inputs(w):
    return PLAN.evaluate_inputs(*generation_of(w))


def curate_inputs(w):
    return PLAN.curate_inputs(chain_of(w), int(w.cgen))


def block_inputs(w):
    return PLAN.block_inputs(chain_of(w), int(w.first))


def sample_grid_inputs(w):
    return PLAN.sample_grid_inputs(chain_of(w))


def track_group_inputs(w):
    return {"files": sorted({f for u in PLAN.tracking_groups[w.group] for f in u.files()})}


def track_group_digest(w):
    return PLAN.digest(PLAN.group_units(w.group))


def final_outputs():
    return PLAN.final_outputs()


def closing_line(done=True):
    return PLAN.closing_line([str(f) for f in workflow.overwrite_configfiles], done)


when_nothing_to_do(lambda: closing_line(done=False))
