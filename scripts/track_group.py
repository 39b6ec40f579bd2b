"""Snakemake adapter: log a group of chains to MLflow in one job."""
from ouroboros.logs import run_job
from ouroboros.tracking import track_group

i, p = snakemake.input, snakemake.params
run_job(snakemake, lambda: track_group(snakemake.wildcards.group, p.units, p.study, snakemake.output[0],
                                       rule=snakemake.rule, repo=p.repo))
