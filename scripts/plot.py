"""Snakemake adapter: every metric of one target against generation, one figure per metric."""
from ouroboros.logs import run_job
from ouroboros.plan import Plan
from ouroboros.plots import plot_target

p = snakemake.params
run_job(snakemake, lambda: plot_target(snakemake.input[0], snakemake.output[0], p.metrics,
                                       Plan.for_job(snakemake).plot_experiments(snakemake.wildcards.target),
                                       band=p.band))
