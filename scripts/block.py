"""Snakemake adapter: run a block of generations of a cheap target in one job."""
from ouroboros import jobs
from ouroboros.logs import run_job

i, o, w = snakemake.input, snakemake.output, snakemake.wildcards
run_job(snakemake, jobs.block, snakemake.params.spec, int(w.first), int(w.last), i.real, i.get("reference"),
        i.get("state"), list(i.get("models", [])), o.state, o.models, o.chain)
