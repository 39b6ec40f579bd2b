"""Snakemake adapter: create (or find) the study's MLflow experiment before the tracking jobs need it."""
from ouroboros import io
from ouroboros.logs import run_job
from ouroboros.tracking import ensure_experiment

run_job(snakemake, lambda: io.save_json(snakemake.output[0], ensure_experiment(snakemake.params.study)))
