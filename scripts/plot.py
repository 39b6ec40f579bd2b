"""Snakemake adapter: draw one metric against generation for every experiment."""
from ouroboros.logs import run_job
from ouroboros.plan import Plan
from ouroboros.plots import plot_metric

run_job(snakemake, lambda: plot_metric(snakemake.input[0], snakemake.wildcards.metric, snakemake.output[0],
                                       experiments=Plan.for_job(snakemake).plot_experiments(),
                                       band=snakemake.params.band, unit=snakemake.params.unit))
