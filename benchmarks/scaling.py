"""How the cost of the cheap targets grows, and what a large sweep costs Snakemake before any job runs.

    .venv/bin/python benchmarks/scaling.py [--chains 1000] [--skip-dag]

* Gaussian (points drawn), GMM and categorical: seconds for one chain of G generations in one process on
  one thread (what a block job runs: fit, draw, evaluate), best of two after a warm-up, as replicates, n
  and generations grow, one factor at a time from a base point; the fitted log-log slope of each; plot
  benchmarks/records/scaling.png;
* a sweep of ``--chains`` chains (Gaussian, one generation block each): how many jobs the DAG has and how
  long ``snakemake -n`` takes to build it.

Writes benchmarks/records/scaling.json.  Timings are measurements, never test verdicts.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS, SNAKEMAKE, save  # noqa: E402

from ouroboros.chain import ChainRun  # noqa: E402
from ouroboros.config import Chain, Experiment  # noqa: E402
from ouroboros.regimes import make_regime  # noqa: E402
from ouroboros.seeding import generator  # noqa: E402

TARGETS = {
    "gaussian": dict(params={"method": "sample"}, base=dict(replicates=100, n=1000, generations=20),
                     grid=dict(replicates=[10, 100, 1000], n=[100, 1000, 10000], generations=[10, 20, 40])),
    "gmm": dict(params={"components": 3, "truth": "separated", "eval_size": 2000}, base=dict(replicates=2, n=500, generations=4),
                grid=dict(replicates=[1, 2, 4], n=[250, 500, 1000], generations=[2, 4, 8])),
    "categorical": dict(params={"K": 100, "truth": "zipf"}, base=dict(replicates=1000, n=1000, generations=50),
                        grid=dict(replicates=[100, 1000, 10000], n=[100, 1000, 10000], generations=[25, 50, 100])),
}


def chain_seconds(target: str, params: dict, replicates: int, n: int, generations: int) -> float:
    reg = make_regime("replace")
    exp = Experiment(label=target, target=target, params=dict(params), n=n, replicates=replicates, lam=1.0,
                     generations=generations, block=generations + 1, regimes=(reg,))
    chain = Chain("scaling", exp, reg, 0)
    t = exp.make_target()
    real = t.real_data(chain.job.real_rng(), n, replicates)
    ref = t.reference(generator(chain.study, exp.label, "reference"))
    run = ChainRun(chain, real, ref)
    start = time.perf_counter()
    for g in range(generations + 1):
        run.step(g)
    return time.perf_counter() - start


def scaling() -> dict:
    out = {}
    for target, spec in TARGETS.items():
        rows = {}
        chain_seconds(target, spec["params"], **spec["base"])  # warm-up: imports, caches
        for factor, values in spec["grid"].items():
            pts = []
            for v in values:
                args = dict(spec["base"], **{factor: v})
                s = min(chain_seconds(target, spec["params"], **args) for _ in range(2))  # best of two
                pts.append({"value": v, "seconds": round(s, 4)})
                print(f"{target:>11} {factor}={v:<6} ({args}): {s:.3f} s", flush=True)
            x = np.log([p["value"] for p in pts])
            y = np.log([p["seconds"] for p in pts])
            rows[factor] = {"points": pts, "loglog_slope": round(float(np.polyfit(x, y, 1)[0]), 2)}
        out[target] = {"base": spec["base"], "params": spec["params"], "factors": rows}
    return out


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    for ax, factor in zip(axes, ("replicates", "n", "generations")):
        for target, rows in data.items():
            pts = rows["factors"][factor]["points"]
            ax.loglog([p["value"] for p in pts], [p["seconds"] for p in pts], "o-",
                      label=f"{target} (slope {rows['factors'][factor]['loglog_slope']:.2f})")
        ax.set_xlabel(factor)
        ax.set_title(f"cost vs {factor}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("seconds per chain (one process)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path.relative_to(REPO)}")


def sweep_dag(chains: int) -> dict:
    """A study of ``chains`` Gaussian chains (seeds), each one block job; jobs in the DAG and the time of a
    dry run (parse, validate, build the DAG, print nothing per job)."""
    cfg = {"study": "sweep1000", "description": "DAG build benchmark", "seeds": list(range(chains)), "generations": 10,
           "tracking": {"enabled": False},
           "experiments": [{"name": "g", "target": "gaussian", "n": 100, "replicates": 10, "regimes": ["replace"],
                            "params": {"method": "sample"}}]}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep.yaml"
        path.write_text(yaml.safe_dump(cfg))
        start = time.perf_counter()
        proc = subprocess.run(SNAKEMAKE + ["-s", str(REPO / "Snakefile"), "--directory", tmp, "--configfile", str(path),
                                           "-n", "--quiet", "rules"], capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, flags=re.M))
    total = int(counts.pop("total", 0))
    print(f"sweep of {chains} chains: {total} jobs, dry run {seconds:.1f} s", flush=True)
    return {"chains": chains, "jobs": total, "jobs_by_rule": {k: int(v) for k, v in counts.items()},
            "dry_run_s": round(seconds, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chains", type=int, default=1000)
    ap.add_argument("--skip-dag", action="store_true")
    args = ap.parse_args()
    data = scaling()
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(data, RESULTS / "scaling.png")
    out = {"targets": data}
    if not args.skip_dag:
        out["sweep"] = sweep_dag(args.chains)
    save("scaling", out)


if __name__ == "__main__":
    main()
