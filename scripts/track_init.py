"""Snakemake adapter: create the tracking database and the study's experiment."""
from ouroboros.logs import run_job
from ouroboros.tracking import init_experiment

p = snakemake.params
run_job(snakemake, init_experiment, p.study, p.uri, p.artifacts, snakemake.output[0], p.description)
