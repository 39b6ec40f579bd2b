"""Snakemake adapter: log one generation to MLflow."""
from workflow import io
from workflow.logs import run_job
from workflow.tracking import track_generation

i, w, p = snakemake.input, snakemake.wildcards, snakemake.params
gen_dir = i.metrics.rsplit("/", 1)[0]
run_job(snakemake, lambda: track_generation(p.spec, int(w.gen), io.load_json(i.experiment), gen_dir, i.real,
                                            i.get("previous"), snakemake.output[0], rule=snakemake.rule, repo=p.repo))
