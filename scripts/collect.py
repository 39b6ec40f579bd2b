"""Snakemake adapter: gather every chain's metrics into the study's tidy table."""
from ouroboros import jobs
from ouroboros.logs import run_job

run_job(snakemake, jobs.collect, snakemake.params.chains, snakemake.params.files, snakemake.output[0],
        snakemake.params.generations)
