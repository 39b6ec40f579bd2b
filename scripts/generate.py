"""Snakemake adapter: draw generation g's synthetic data from its model."""
from workflow import jobs
from workflow.logs import run_job

run_job(snakemake, jobs.generate, snakemake.params.spec, int(snakemake.wildcards.gen), snakemake.input.model,
        snakemake.output[0])
