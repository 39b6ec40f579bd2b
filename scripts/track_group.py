"""Snakemake adapter: log a group of chains to MLflow in one job."""
from ouroboros.logs import run_job
from ouroboros.plan import Plan
from ouroboros.tracking import track_group

p, group = snakemake.params, snakemake.wildcards.group
run_job(snakemake, lambda: track_group(group, Plan.for_job(snakemake).group_units(group), {**p.study, **p.note},
                                       snakemake.output[0], rule=snakemake.rule, repo=p.repo))
