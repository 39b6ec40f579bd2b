"""Shipped studies end to end through snakemake: tracking's share of the wall time, and what computing
generation 0 once per (experiment, seed) saves.

    .venv/bin/python benchmarks/studies.py [default oreilly regimes ...] [--cores N] [--once]

Each study runs from scratch twice in a temporary folder, tracking on (as shipped) and off.  Tracking's share
is 1 - wall(off) / wall(on).  ``--once`` (for the studies that take half an hour or more here) runs it once,
tracking on, and reports tracking's share of the summed job seconds instead (the same as its share of the
wall time where the jobs keep every core busy, an estimate otherwise; marked as such in the table).
Generation 0 is trained, sampled and evaluated once per (experiment, seed) and shared by the experiment's
regimes; without that each of the R regimes would repeat it, so the saving is (R - 1) x generation 0's job
seconds (Snakemake's benchmark files), reported against the study's summed job seconds.  Also the headline numbers of each study.  Writes benchmarks/records/studies.json (studies measured
earlier are kept; a study measured again is replaced).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS, job_metrics, machine, run_study, save, tracking_jobs  # noqa: E402

from ouroboros.config import Study  # noqa: E402

#: the figures of each study the README's studies table shows (benchmarks/readme_table.py writes them there):
#: (experiment, regime, generation, metric), the mean over seeds, with the closed form where theory gives one
HEADLINES = {
    "oreilly": [("gaussian", "replace", 1000, "std_mean")],
    "oreilly-10k": [("gaussian", "replace", 10000, "std_mean"), ("gaussian", "replace", 10000, "collapsed_fraction")],
    "shumailov-gmm": [("gmm-blob", "replace", 0, "component_std_max"), ("gmm-blob", "replace", 0, "component_std_min"),
                      ("gmm-blob", "replace", 2050, "component_std_max"), ("gmm-blob", "replace", 2050, "component_std_min"),
                      ("gmm-blob", "replace", 500, "tail_mass_ratio"), ("gmm-blob", "replace", 100, "kl_truth_model"),
                      ("gmm-blob", "replace", 2050, "kl_truth_model")],
    "default": [("gaussian", "replace", 100, "var_ratio_mean"), ("gaussian", "accumulate", 100, "var_ratio_mean"),
                ("gaussian", "accumulate-subsample", 100, "var_ratio_mean"), ("gaussian", "mix-rho0.1", 100, "var_ratio_mean"),
                ("vae", "replace", 0, "recall"), ("vae", "replace", 4, "recall"), ("vae", "mix-rho0.1", 4, "recall"),
                ("vae", "accumulate", 4, "recall"),
                ("lm", "replace", 0, "ppl_real"), ("lm", "replace", 3, "ppl_real"), ("lm", "accumulate", 3, "ppl_real")],
}
GEN0_RULES = ("train", "generate", "evaluate")


def significant(x: float, digits: int = 4) -> float:
    """x to ``digits`` significant digits (not decimals: O'Reilly-10k's std is 0.00055)."""
    return float(f"{x:.{digits}g}")


def config_of(study: str) -> Path:
    return REPO / "config" / ("config.yaml" if study == "default" else f"studies/{study}.yaml")


def gen0_saving(workdir: Path, study: str, cfg: dict) -> dict:
    """Seconds of each experiment's shared generation-0 jobs, and what R - 1 repeats of them would cost."""
    logs = workdir / "results" / study / "logs"
    out = {}
    for e in Study.from_config(cfg).experiments:  # as expanded: a swept entry is one experiment per value
        label = e.label
        seconds = 0.0
        for bench in logs.glob(f"{label}/seed*/gen0/*.benchmark.tsv"):
            rule = bench.name.split(".")[0]
            if rule in GEN0_RULES:
                seconds += job_metrics({rule: bench}).get(f"job_seconds_{rule}", 0.0)
        if seconds:
            regimes = len(e.regimes)
            out[label] = {"gen0_job_s": round(seconds, 1), "regimes": regimes, "saved_s": round((regimes - 1) * seconds, 1)}
    return out


def headline(workdir: Path, study: str, cfg: dict) -> dict:
    """``metric@generation (experiment/regime)`` -> the mean over seeds in the run's metrics table."""
    table = pd.read_csv(workdir / "results" / study / "metrics.csv", comment="#")
    heads = {}
    for exp, regime, gen, metric in HEADLINES.get(study, []):
        rows = table[(table.experiment == exp) & (table.regime == regime) & (table.generation == gen) & (table.metric == metric)]
        if rows.empty:
            raise SystemExit(f"{study}: no {metric} at generation {gen} of {exp}/{regime} in the run's table")
        heads[f"{metric}@{gen} ({exp}/{regime})"] = significant(float(rows["value"].mean()))
    return heads


def theory(study: str, cfg: dict) -> dict:
    """The closed form of each headline figure, where theory gives one (same keys as :func:`headline`)."""
    import numpy as np

    from ouroboros.targets.capabilities import closed_form

    s = Study.from_config(cfg)
    out = {}
    for exp, regime, gen, metric in HEADLINES.get(study, []):
        e = s.experiment(exp)
        r = next(r for r in e.regimes if r.label == regime)
        value = closed_form(e.make_target(), metric, np.arange(gen + 1), r, e.n, e.lam, e.curation)
        if value is not None:
            out[f"{metric}@{gen} ({exp}/{regime})"] = significant(float(np.asarray(value)[-1]))
    return out


def bench(study: str, cores: int, once: bool = False) -> dict:
    config = config_of(study)
    cfg = yaml.safe_load(config.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        notrack = tmp / "notrack.yaml"
        notrack.write_text("tracking: {enabled: false}\n")
        on = run_study(tmp / "on", [config], cores)
        count, tracking_job_s = tracking_jobs(on["jobs"])
        row = {"study": study, "cores": cores, "wall_on_s": on["wall_s"], "tracking_jobs": count,
               "tracking_job_s": round(tracking_job_s, 1), "jobs": on["steps"]}
        if once:
            jobs = {k: round(sum(v), 1) for k, v in on["jobs"].items()}
            total_job_s = sum(jobs.values()) - tracking_job_s
            row.update(jobs_on_s=jobs, tracking_job_share=round(tracking_job_s / (total_job_s + tracking_job_s), 3),
                       headline=headline(tmp / "on", study, cfg))
            done = tmp / "on"
        else:
            off = run_study(tmp / "off", [config, notrack], cores)
            jobs_off = {k: round(sum(v), 1) for k, v in off["jobs"].items()}
            total_job_s = sum(jobs_off.values())
            row.update(wall_off_s=off["wall_s"], tracking_share=round(1 - off["wall_s"] / on["wall_s"], 3),
                       jobs_off_s=jobs_off, headline=headline(tmp / "off", study, cfg))
            done = tmp / "off"
        row["theory"] = theory(study, cfg)
        saving = gen0_saving(done, study, cfg)
        if saving:
            saved = sum(v["saved_s"] for v in saving.values())
            row["gen0"] = {"experiments": saving, "saved_job_s": round(saved, 1),
                           "saved_share_of_unshared": round(saved / (total_job_s + saved), 3)}
    row["measured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    row["commit"] = machine()["commit"]
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("studies", nargs="*", default=["default", "oreilly"])
    ap.add_argument("--cores", type=int, default=0, help="default: every core")
    ap.add_argument("--once", action="store_true", help="run once, tracking on: tracking's share of the job seconds")
    args = ap.parse_args()
    path = RESULTS / "studies.json"
    rows = {r["study"]: r for r in json.loads(path.read_text())["studies"]} if path.is_file() else {}
    for s in args.studies:
        row = bench(s, args.cores, args.once)
        rows[s] = row
        if args.once:
            line = (f"{s}: tracking on {row['wall_on_s']:.1f} s; tracking jobs {row['tracking_job_s']:.1f} s = "
                    f"{row['tracking_job_share']:.0%} of the job seconds (target <= 15%), {row['tracking_jobs']} tracking jobs")
        else:
            line = (f"{s}: tracking on {row['wall_on_s']:.1f} s, off {row['wall_off_s']:.1f} s: tracking's share "
                    f"{row['tracking_share']:.0%} (target <= 15%), {row['tracking_jobs']} tracking jobs")
        if "gen0" in row:
            line += f"; generation 0 shared saves {row['gen0']['saved_job_s']:.0f} job-s ({row['gen0']['saved_share_of_unshared']:.0%})"
        print(line, flush=True)
    save("studies", {"studies": list(rows.values())})


if __name__ == "__main__":
    main()
