"""Snakemake adapter: score a block's generations against real held-out data."""
from ouroboros import jobs
from ouroboros.logs import run_job

i, w = snakemake.input, snakemake.wildcards
run_job(snakemake, jobs.block_evaluate, snakemake.params.spec, int(w.first), int(w.last), i.real, i.reference,
        i.models, i.state, i.chain, snakemake.output.metrics)
