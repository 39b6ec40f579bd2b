"""Snakemake adapter: log a block's generations to MLflow."""
from ouroboros import io
from ouroboros.logs import run_job
from ouroboros.tracking import track_block

i, w, p = snakemake.input, snakemake.wildcards, snakemake.params
block_dir = i.metrics.rsplit("/", 1)[0]
run_job(snakemake, lambda: track_block(p.spec, int(w.first), int(w.last), p.every, io.load_json(i.experiment), block_dir,
                                       i.real, i.get("previous"), snakemake.output[0], rule=snakemake.rule, repo=p.repo,
                                       benchmarks={"block": i.bench_block}))
