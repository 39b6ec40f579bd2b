"""Snakemake adapter: build generation g's training set per regime and fit the model."""
from workflow import jobs
from workflow.logs import run_job

run_job(snakemake, jobs.train, snakemake.params.spec, int(snakemake.wildcards.gen), snakemake.input.real,
        list(snakemake.input.samples), snakemake.output.model, snakemake.output.manifest)
