"""Snakemake adapter: gather every chain's metrics into the study's tidy table."""
from workflow import jobs
from workflow.logs import run_job

run_job(snakemake, jobs.collect, snakemake.params.chains, snakemake.params.files, snakemake.output[0])
