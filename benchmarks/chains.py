"""One chain of a torch study run in one process, generation by generation, on a chosen device: the seconds
each generation's fit, draw and evaluation take (what the train, generate and evaluate jobs run, without
Snakemake, files or MLflow).

    .venv/bin/python benchmarks/chains.py vae-digits lm-small [--device cpu|cuda] [--generations 2]

Uses the study's first experiment, its first regime and first seed.  For a GPU machine without Snakemake
or MLflow installed: it needs only numpy, torch, pyyaml and what the target needs.  Writes
benchmarks/records/chains-<device>.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, save  # noqa: E402

from ouroboros.chain import ChainRun  # noqa: E402
from ouroboros.config import Chain, Experiment  # noqa: E402
from ouroboros.regimes import make_regime  # noqa: E402
from ouroboros.seeding import generator  # noqa: E402


def sync(device):
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def run(study: str, device: str, generations: int) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "studies" / f"{study}.yaml").read_text())
    e = cfg["experiments"][0]
    params = dict(e.get("params", {}), device=device)
    regime = e["regimes"][0] if isinstance(e["regimes"][0], str) else e["regimes"][0]["kind"]
    reg = make_regime(regime)
    exp = Experiment(label=e.get("name", e["target"]), target=e["target"], params=params, n=e["n"],
                     replicates=e.get("replicates", 1), lam=e.get("lam", 1.0), generations=generations, block=1,
                     regimes=(reg,))
    chain = Chain(study, exp, reg, cfg["seeds"][0])
    target = exp.make_target()
    start = time.perf_counter()
    real = target.real_data(chain.job.real_rng(), exp.n, exp.replicates)
    ref = target.reference(generator(chain.study, exp.label, "reference"))
    setup = time.perf_counter() - start
    crun = ChainRun(chain, real, ref)
    rows = []
    for t in range(generations + 1):
        times = {}
        t0 = time.perf_counter()
        model = crun.fit(t, crun.trainset(t))
        sync(device)
        times["fit_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        drawn = crun.draw(t, model)
        sync(device)
        times["draw_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        crun.evaluate(model, drawn, gen0=model if t == 0 else None)
        sync(device)
        times["evaluate_s"] = time.perf_counter() - t0
        synthetic, _ = crun.synthetic(t, model, drawn)
        crun.record(t, model, synthetic)
        rows.append({"generation": t, **{k: round(v, 2) for k, v in times.items()}})
        print(f"{study} gen {t} on {device}: " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()), flush=True)
    return {"study": study, "experiment": exp.label, "regime": reg.label, "device": device, "setup_s": round(setup, 1),
            "generations": rows, "mean_generation_s": round(float(np.mean([sum(v for k, v in r.items() if k != "generation")
                                                                          for r in rows])), 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("studies", nargs="+")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--generations", type=int, default=2)
    args = ap.parse_args()
    out = [run(s, args.device, args.generations) for s in args.studies]
    save(f"chains-{args.device}", {"chains": out})


if __name__ == "__main__":
    main()
