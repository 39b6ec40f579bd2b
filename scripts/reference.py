"""Snakemake adapter: fixed evaluation material shared by an experiment's chains."""
from ouroboros import jobs
from ouroboros.logs import run_job

run_job(snakemake, jobs.reference, snakemake.params.spec, snakemake.output[0], snakemake.input.get("backbone"))
