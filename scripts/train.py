"""Snakemake adapter: build generation g's training set per regime and fit the model."""
from ouroboros import jobs
from ouroboros.logs import run_job

run_job(snakemake, jobs.train, snakemake.params.spec, snakemake.params.gen, snakemake.input.real,
        list(snakemake.input.get("samples", [])), snakemake.output.model, snakemake.output.manifest,
        snakemake.input.get("backbone"), snakemake.input.get("previous"))
