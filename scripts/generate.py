"""Snakemake adapter: draw generation g's synthetic data from its model."""
from ouroboros import jobs
from ouroboros.logs import run_job

run_job(snakemake, jobs.generate, snakemake.params.spec, snakemake.params.gen, snakemake.input.model,
        snakemake.output[0])
