"""Snakemake adapter: convert a pretrained model once into its backbone cache entry."""
from ouroboros import jobs
from ouroboros.logs import run_job

run_job(snakemake, jobs.backbone, snakemake.params.model, snakemake.output[0])
