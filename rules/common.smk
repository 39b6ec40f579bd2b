# Snakemake glue: the validated study as a plan (ouroboros.plan), the rules' output patterns (spelled once, in
# ouroboros.paths) and input functions that turn wildcards into calls of the plan.
import os

import sys
from pathlib import Path

from ouroboros import paths
from ouroboros.backbones import check_entries as check_backbone_entries
from ouroboros.catalogue import MetricCatalogue
from ouroboros.claims import counts as claims_counts, report_rows as claims_report_rows
from ouroboros.costs import summary_line as costs_line
from ouroboros.config import ConfigError, put_package_on_pythonpath, results_config
from ouroboros.console import announce
from ouroboros.io import damaged as damaged_intermediates
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
    print(f"Error: {e}", file=sys.stderr)
    sys.exit(1)
STUDY = _PREPARED.study
SWEEP_PLOTS = _PREPARED.sweep_plots
TRACKING = _PREPARED.tracking
PLAN = Plan(STUDY, TRACKING, SWEEP_PLOTS)
METRICS = MetricCatalogue(STUDY)
announce(METRICS.headlines())  # what the console (the logger plugin `ouroboros`) shows of a finished generation
# a converted pretrained model that no longer matches its record is moved aside here, and rebuilt: never used
# (by the process that plans the run, not by a cluster job reading the workflow again)
if workflow.is_main_process:
    for _line in check_backbone_entries(PLAN.backbones.values()):
        print(f"Rebuilding the backbone cache entry {_line}", file=sys.stderr)
    # an intermediate cut short after its job wrote it (its recorded size differs) stops the run here, by name
    _DAMAGED = damaged_intermediates(paths.results(STUDY.name))
    if _DAMAGED:
        print("Error: " + "\n       ".join(_DAMAGED), file=sys.stderr)
        sys.exit(1)
    # a tracking outage noted by an earlier run's jobs: this run tries the backend again
    Path(paths.tracking_outage(STUDY.name)).unlink(missing_ok=True)
    if _PREPARED.costs is not None:  # what the study costs (ouroboros check FILE adds the time)
        print(costs_line(_PREPARED.costs, STUDY.name), file=sys.stderr)
# what a tracking job needs to find (or create) the study's experiment: where (a rerun trigger) and its note
# (description and claims: derived from the input, so a changed note re-logs no generation)
TRACKING_STUDY = {"study": STUDY.name, "uri": TRACKING["uri"], "artifacts": TRACKING["artifacts"]}
TRACKING_NOTE = {"description": config["description"], "claims": config.get("claims", "")}

S = STUDY.name
LOGS = paths.logs(S)
# `snakemake --report`: the first page lists each claim with the verdict of the last claims job (the report's page is
# rendered from the config alone); only then, so no job's config carries an earlier run's verdicts
if any(arg == "--report" or arg.startswith("--report=") for arg in sys.argv):
    _ROWS = claims_report_rows(paths.claims_table(S))
    config["claims_verdicts"] = {"counts": claims_counts(_ROWS), "rows": _ROWS} if _ROWS else {}
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
    backbone=r"[A-Za-z0-9][A-Za-z0-9_.-]*-[0-9a-f]{12}",


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
    return chain_of(w).job.target().gpus()


def generation_gpus(w):
    return generation_of(w)[0].job.target().gpus()


def _threads(chain):
    return chain.job.target().threads(chain.job.n_candidates, chain.experiment.replicates)


def block_threads(w):
    """Threads a chain's job can use: a target that cuts large draws into chunks runs them on threads (the same
    numbers whatever the count); a torch target's `threads` setting.  Snakemake scales this down to --cores."""
    return _threads(chain_of(w))


def generation_threads(w):
    return _threads(generation_of(w)[0])


# -- what a job depends on: its stage's settings (rerun triggers) and its whole spec (not one) -------------
# A job's `spec` param is derived from its input (the function takes `input`), which Snakemake never counts as a
# rerun trigger; the settings of the job's stage and of the stages before it are plain params, one per stage
# (ouroboros.config.ChainSpec.by_stage), so a changed setting re-runs only the jobs of its stage and what reads
# their outputs, and a setting no result depends on (threads, device) re-runs nothing.
def generation_stage(stage):
    return lambda w: PLAN.settings(*generation_of(w), stage)


def chain_stage(stage):
    return lambda w: PLAN.chain_settings(chain_of(w), stage)


def real_spec(w, input):
    return PLAN.real_spec(w.exp, w.get("seed"))


def reference_spec(w, input):
    return PLAN.reference_spec(w.exp)


def whole_generation_spec(w, input):
    return generation_spec(w)


def whole_chain_spec(w, input):
    return chain_spec(w)


# -- inputs -----------------------------------------------------------------------------------------------
def train_inputs(w):
    return PLAN.train_inputs(*generation_of(w))


def evaluate_inputs(w):
    return PLAN.evaluate_inputs(*generation_of(w))


def curate_inputs(w):
    return PLAN.curate_inputs(chain_of(w), int(w.cgen))


def block_inputs(w):
    return PLAN.block_inputs(chain_of(w), int(w.first))


def block_evaluate_inputs(w):
    return PLAN.block_evaluate_inputs(chain_of(w), int(w.first), int(w.last))


def prune_inputs(w):
    return PLAN.prune_inputs(*generation_of(w))


def sample_grid_inputs(w):
    return PLAN.sample_grid_inputs(chain_of(w))


def track_group_inputs(w):
    return {"files": sorted({f for u in PLAN.tracking_groups[w.group] for f in u.files()})}


def track_group_digest(w):
    return PLAN.group_digest(w.group)


def final_outputs():
    return PLAN.final_outputs()


def closing_line(done=True):
    return PLAN.closing_line([str(f) for f in workflow.overwrite_configfiles], done, workflow.main_snakefile)


when_nothing_to_do(lambda: closing_line(done=False))
