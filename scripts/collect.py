"""Snakemake adapter: gather every chain's metrics into the study's tidy table."""
from ouroboros import jobs
from ouroboros.logs import run_job
from ouroboros.plan import Plan


def collect():
    o = snakemake.output
    chains, files, generations = Plan.for_job(snakemake).collect_args()
    jobs.collect(chains, files, o.metrics, generations, o.settings, o.summary)


run_job(snakemake, collect)
