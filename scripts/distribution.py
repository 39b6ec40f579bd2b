"""Snakemake adapter: overlaid per-generation histograms of one per-item distribution of an experiment."""
from ouroboros.logs import run_job
from ouroboros.plots import plot_distribution

w = snakemake.wildcards
run_job(snakemake, plot_distribution, w.name, snakemake.params.groups, snakemake.output[0],
        description=snakemake.params.description, title=w.exp)
