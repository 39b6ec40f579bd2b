"""Snakemake adapter: draw one sweep plot (a metric's summary against a swept setting) and its table."""
from ouroboros.logs import run_job
from ouroboros.plan import Plan
from ouroboros.sweeps import plot_sweep

run_job(snakemake, lambda: plot_sweep(snakemake.input[0], snakemake.params.spec,
                                      Plan.for_job(snakemake).plot_experiments(), snakemake.output.figure,
                                      snakemake.output.table))
