"""Snakemake adapter: remove a generation's weights that its chain does not keep."""
from ouroboros import jobs
from ouroboros.logs import run_job

run_job(snakemake, jobs.prune, snakemake.input.model, snakemake.params.keep, snakemake.output[0])
