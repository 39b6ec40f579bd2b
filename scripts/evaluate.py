"""Snakemake adapter: score generation g's model against real held-out data."""
from ouroboros import jobs
from ouroboros.logs import run_job

i = snakemake.input
run_job(snakemake, jobs.evaluate, snakemake.params.spec, snakemake.params.gen, i.model, i.samples, i.trainset,
        i.real, i.reference, i.gen0, snakemake.output.metrics, snakemake.output.distributions)
