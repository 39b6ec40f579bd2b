"""Time the shipped studies end to end through snakemake, with peak memory.

    .venv/bin/python benchmarks/studies.py [oreilly oreilly-10k ...] [--cores 2]

Each study runs from scratch in a temporary folder; the script prints wall
time, the summed job time from the job logs, the peak resident memory of the
largest process waited for (snakemake itself or a job it ran), and the headline numbers of each study.  Results also go to
benchmarks/out/studies.json.  Timings are measurements, never test verdicts.
"""
from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
HEADLINES = {
    "oreilly": [("gaussian", "replace", 1000, "std_mean")],
    "oreilly-10k": [("gaussian", "replace", 1000, "std_mean"), ("gaussian", "replace", 10000, "std_mean"),
                    ("gaussian", "replace", 10000, "collapsed_fraction")],
    "shumailov-gmm": [("gmm-blob", "replace", 2050, "component_std_max"), ("gmm-blob", "replace", 2050, "tail_mass_ratio"),
                      ("gmm-blob", "replace", 2050, "kl_truth_model")],
    "default": [("gaussian", "replace", 100, "var_ratio_mean"), ("gaussian", "accumulate", 100, "var_ratio_mean")],
}


def job_seconds(results: Path) -> float:
    total = 0.0
    for log in results.rglob("*.log"):
        m = re.search(r"done in ([0-9.]+)s", log.read_text())
        total += float(m.group(1)) if m else 0.0
    return total


def bench(study: str, cores: int) -> dict:
    config = REPO / "config" / ("config.yaml" if study == "default" else f"studies/{study}.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", tmp,
                               "--configfile", str(config), "--cores", str(cores), f"results/{study}/metrics.csv"],
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        results = Path(tmp) / "results" / study
        table = pd.read_csv(results / "metrics.csv")
        heads = {}
        for exp, regime, gen, metric in HEADLINES.get(study, []):
            rows = table[(table.experiment == exp) & (table.regime == regime) & (table.generation == gen) & (table.metric == metric)]
            heads[f"{metric}@{gen} ({exp}/{regime})"] = float(rows["value"].mean())
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return {"study": study, "cores": cores, "wall_s": round(wall, 1), "job_s": round(job_seconds(results), 1),
                "peak_rss_mb": round(peak), "headline": heads}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("studies", nargs="*", default=["oreilly", "oreilly-10k"])
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    out = [bench(s, args.cores) for s in args.studies]
    for row in out:
        print(json.dumps(row))
    (REPO / "benchmarks" / "out").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "out" / "studies.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
