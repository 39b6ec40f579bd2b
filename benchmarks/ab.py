"""Before/after in one run: the same measurements on two checkouts, alternating, on this machine.

    .venv/bin/python benchmarks/ab.py BEFORE_CHECKOUT [--repeat 2] [--only dag oreilly default]

* ``dag``: a dry run of a 1,000-chain Gaussian sweep (parse, validate, build the DAG; see scaling.py);
* ``oreilly``: the O'Reilly study end to end from scratch (config/studies/oreilly.yaml, tracking on as
  shipped), wall time;
* ``default``: the default study end to end from scratch (config/config.yaml, tracking on), wall time.

Each checkout's own Snakefile and package run (``PYTHONPATH`` names its ``workflow/``), with this
interpreter's packages; runs alternate (before, after, before, ...) so that drift in the machine's speed
falls on both.  Writes benchmarks/records/ab.json: every time, the best of each, and after / before.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, SNAKEMAKE, save  # noqa: E402


def _run(checkout: Path, workdir: Path, configfile: Path, *args: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(checkout / "workflow"), MLFLOW_DISABLE_TELEMETRY="true")
    if (REPO.parent / "shared").is_dir() and not (workdir.parent / "shared").exists():
        (workdir.parent / "shared").symlink_to(REPO.parent / "shared")
    cmd = SNAKEMAKE + ["-s", str(checkout / "Snakefile"), "--directory", str(workdir), "--configfile", str(configfile),
                       *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"snakemake failed in {checkout} ({workdir}):\n{proc.stderr[-3000:]}")
    return seconds


def dag(checkout: Path, tmp: Path) -> float:
    cfg = {"study": "sweep1000", "description": "DAG build benchmark", "seeds": list(range(1000)), "generations": 10,
           "tracking": {"enabled": False},
           "experiments": [{"name": "g", "target": "gaussian", "n": 100, "replicates": 10, "regimes": ["replace"],
                            "params": {"method": "sample"}}]}
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return _run(checkout, tmp / "work", path, "-n", "--quiet", "rules")


def study(configfile: Path):
    def measure(checkout: Path, tmp: Path) -> float:
        return _run(checkout, tmp / "work", checkout / configfile, "--cores", str(len(os.sched_getaffinity(0))))
    return measure


MEASURES = {"dag": dag, "oreilly": study(Path("config/studies/oreilly.yaml")),
            "default": study(Path("config/config.yaml"))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before", type=Path, help="a checkout of the commit before the change")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=list(MEASURES), choices=list(MEASURES))
    args = ap.parse_args()
    before = args.before.resolve()
    commit = lambda c: subprocess.run(["git", "-C", str(c), "rev-parse", "--short", "HEAD"],  # noqa: E731
                                      capture_output=True, text=True).stdout.strip()
    out = {"before": commit(before), "after": commit(REPO), "measures": {}}
    for name in args.only:
        times = {"before": [], "after": []}
        for _ in range(args.repeat):
            for side, checkout in (("before", before), ("after", REPO)):
                with tempfile.TemporaryDirectory() as tmp:
                    (Path(tmp) / "run").mkdir()
                    times[side].append(round(MEASURES[name](checkout, Path(tmp) / "run"), 2))
                print(f"{name} {side}: {times[side][-1]:.1f} s", flush=True)
        best = {k: min(v) for k, v in times.items()}
        out["measures"][name] = {"seconds": times, "best": best, "ratio": round(best["after"] / best["before"], 3)}
        print(f"{name}: best {best['before']:.1f} s before, {best['after']:.1f} s after "
              f"({out['measures'][name]['ratio']:.3f})", flush=True)
    save("ab", out)


if __name__ == "__main__":
    main()
