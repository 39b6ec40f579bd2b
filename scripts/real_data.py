"""Snakemake adapter: draw or load a chain's real training and held-out data."""
from ouroboros import jobs
from ouroboros.logs import run_job

run_job(snakemake, jobs.real_data, snakemake.params.spec, snakemake.output[0])
