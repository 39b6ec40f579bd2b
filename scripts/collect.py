"""Snakemake adapter: gather every chain's metrics into the study's tidy table."""
from ouroboros import jobs
from ouroboros.logs import run_job

o = snakemake.output
run_job(snakemake, jobs.collect, snakemake.params.chains, snakemake.params.files, o.metrics,
        snakemake.params.generations, o.settings, o.summary)
