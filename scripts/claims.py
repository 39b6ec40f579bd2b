"""Snakemake adapter: check the study's claims against its metrics table."""
from ouroboros import claims
from ouroboros.logs import run_job


def check():
    claims.write(snakemake.params.claims, snakemake.input.metrics, snakemake.output[0], snakemake.params.repo,
                 **snakemake.params.context)


run_job(snakemake, check)
