"""O'Reilly's experiment: the pipeline against the script it replaces and against the machine's limit.

    .venv/bin/python benchmarks/oreilly.py [--skip-loop]

* the loop a script writer writes: for each of 1,000 replicates and 1,000 generations
  ``x = rng.normal(mu, sd, 1000); mu, sd = x.mean(), x.std()`` (10^9 draws);
* numpy's floor: 10^9 standard normals drawn on all cores (one generator per thread, nothing else);
* the pipeline: ``snakemake --cores all --configfile config/studies/oreilly.yaml`` from scratch, tracking on
  as shipped (and off, for tracking's share), with the block job's own time (the compute);
* ``method: sufficient`` (the same chain drawn through its sufficient statistics): the compute job's time.

Prints each ratio and writes benchmarks/records/oreilly.json.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, run_study, save, tracking_jobs  # noqa: E402

STUDY = REPO / "config" / "studies" / "oreilly.yaml"


def script_loop(replicates=1000, generations=1000, n=1000, seed=0) -> float:
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(replicates):
        mu, sd = 0.0, 1.0
        for _ in range(generations):
            x = rng.normal(mu, sd, n)
            mu, sd = x.mean(), x.std()
    return time.perf_counter() - start


def numpy_floor(total=10**9, chunk=1 << 18) -> tuple[float, int]:
    """Seconds to draw ``total`` standard normals on every core (threads, one generator each)."""
    workers = len(os.sched_getaffinity(0))
    per = total // workers

    def draw(seed):
        rng = np.random.default_rng(seed)
        buf = np.empty(chunk)
        left = per
        while left > 0:
            m = min(chunk, left)
            rng.standard_normal(out=buf[:m])
            left -= m

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(draw, range(workers)))
    return time.perf_counter() - start, workers


def generation_loop_s(workdir: Path) -> float:
    """Seconds of the block jobs' generation loops, from their logs' last progress line ("gen 999/999: ... (9.1s)")."""
    total = 0.0
    for log in (workdir / "results" / "oreilly" / "logs").rglob("gens*.log"):
        if log.name.endswith(".tracking.log"):
            continue
        times = re.findall(r" gen \d+/\d+: .*\(([0-9.]+)s\)$", log.read_text(), flags=re.M)
        total += float(times[-1]) if times else 0.0
    return total


def with_method(method: str, tmp: Path) -> Path:
    cfg = yaml.safe_load(STUDY.read_text())
    for e in cfg["experiments"]:
        e["params"]["method"] = method
    path = tmp / f"oreilly-{method}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-loop", action="store_true", help="reuse the loop time of the last results file")
    args = ap.parse_args()
    out = {}
    if args.skip_loop:
        import json

        out["script_loop_s"] = json.loads((REPO / "benchmarks/records/oreilly.json").read_text())["script_loop_s"]
    else:
        out["script_loop_s"] = round(script_loop(), 2)
    print(f"script loop (1000 x 1000 x rng.normal(1000)): {out['script_loop_s']:.1f} s")
    floor, workers = numpy_floor()
    out.update(numpy_floor_s=round(floor, 2), numpy_floor_threads=workers)
    print(f"numpy floor: 1e9 standard normals on {workers} threads: {floor:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        notrack = tmp / "notrack.yaml"
        notrack.write_text("tracking: {enabled: false}\n")
        on = run_study(tmp / "on", [STUDY])
        off = run_study(tmp / "off", [STUDY, notrack])
        suff = run_study(tmp / "sufficient", [with_method("sufficient", tmp), notrack])
        loop_on, loop_suff = generation_loop_s(tmp / "on"), generation_loop_s(tmp / "sufficient")
    compute = sum(on["jobs"]["block"])
    out.update(pipeline_wall_s=on["wall_s"], pipeline_cpu_s=on["cpu_s"], pipeline_no_tracking_wall_s=off["wall_s"],
               compute_job_s=round(compute, 2), block_jobs=len(on["jobs"]["block"]),
               tracking_job_s=round(tracking_jobs(on["jobs"])[1], 2),
               sufficient_compute_job_s=round(sum(suff["jobs"]["block"]), 2), sufficient_wall_s=suff["wall_s"],
               generation_loop_s=round(loop_on, 2), sufficient_generation_loop_s=round(loop_suff, 2),
               jobs_on={k: round(sum(v), 2) for k, v in on["jobs"].items()})
    out["speedup_vs_loop"] = round(out["script_loop_s"] / on["wall_s"], 2)
    out["compute_vs_floor"] = round(compute / floor, 2)
    out["tracking_share"] = round(1 - off["wall_s"] / on["wall_s"], 3)
    print(f"pipeline, tracking on: {on['wall_s']:.1f} s wall ({out['speedup_vs_loop']:.2f}x the loop; target >= 2x)")
    print(f"pipeline, tracking off: {off['wall_s']:.1f} s wall; tracking's share {out['tracking_share']:.0%}")
    print(f"compute (block jobs): {compute:.1f} s = {out['compute_vs_floor']:.2f}x numpy's floor (target <= 1.3x)")
    print(f"  of which the generation loop {loop_on:.1f} s = {loop_on / floor:.2f}x the floor (the rest: start-up, "
          "imports, writing 1,001 models)")
    print(f"method sufficient: compute job {out['sufficient_compute_job_s']:.2f} s, its generation loop "
          f"{loop_suff:.2f} s (target < 1 s), wall {suff['wall_s']:.1f} s")
    save("oreilly", out)


if __name__ == "__main__":
    main()
