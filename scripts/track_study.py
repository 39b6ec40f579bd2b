"""Snakemake adapter: the study-level MLflow run with the plots and metrics table."""
from ouroboros.logs import run_job
from ouroboros.tracking import track_study

i, p = snakemake.input, snakemake.params
run_job(snakemake, lambda: track_study({**p.study, **p.note}, p.config, i.metrics, list(i.plots),
                                       snakemake.output[0], repo=p.repo))
