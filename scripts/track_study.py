"""Snakemake adapter: the study-level MLflow run with the plots and metrics table."""
from workflow import io
from workflow.logs import run_job
from workflow.tracking import track_study

i, p = snakemake.input, snakemake.params
run_job(snakemake, lambda: track_study(p.study, p.config, io.load_json(i.experiment), i.metrics, list(i.plots),
                                       snakemake.output[0], repo=p.repo))
