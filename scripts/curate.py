"""Snakemake adapter: the chain's curation step on generation g's samples."""
from ouroboros import jobs
from ouroboros.logs import run_job

i, o = snakemake.input, snakemake.output
run_job(snakemake, jobs.curate, snakemake.params.spec, snakemake.params.gen, i.samples, i.model, i.gen0, i.get("reference"),
        o.samples, o.metrics)
