"""Snakemake adapter: log one generation to MLflow (generation 0 once per experiment and seed: ``shared``)."""
from ouroboros import io
from ouroboros.logs import run_job
from ouroboros.tracking import track_generation

i, p = snakemake.input, snakemake.params
gen_dir = i.metrics.rsplit("/", 1)[0]
extra = ([i.gen0_metrics] if "gen0_metrics" in i.keys() else []) + list(i.get("curation", []))
run_job(snakemake, lambda: track_generation(p.spec, p.gen, io.load_json(i.experiment), gen_dir, i.real,
                                            i.get("previous"), snakemake.output[0], rule=snakemake.rule, repo=p.repo,
                                            extra_metrics=extra, shared=p.shared,
                                            benchmarks={k[len("bench_"):]: v for k, v in i.items() if k.startswith("bench_")}))
