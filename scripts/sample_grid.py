"""Snakemake adapter: a chain's samples, one row per generation."""
from ouroboros.logs import run_job
from ouroboros.plots import sample_grid

w = snakemake.wildcards
run_job(snakemake, sample_grid, list(snakemake.input), snakemake.params.generations, tuple(snakemake.params.shape),
        snakemake.output[0], title=f"{w.exp} / {w.regime} / seed {w.seed}")
