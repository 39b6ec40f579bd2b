"""Snakemake adapter: fixed evaluation material shared by an experiment's chains."""
from workflow import jobs
from workflow.logs import run_job

run_job(snakemake, jobs.reference, snakemake.params.spec, snakemake.output[0])
