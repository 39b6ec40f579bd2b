"""Shared by the benchmarks: the machine a figure came from, running a study through snakemake, saving results.

Every benchmark writes ``benchmarks/records/<name>.json`` (with the machine) and prints its ratio to its
baseline.  Timings are measurements, never test verdicts.
"""
from __future__ import annotations

import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from ouroboros.tracking import job_metrics  # reads Snakemake's benchmark files (MLflow is imported only to log)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "records"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def machine() -> dict:
    """CPU model, cores, memory, GPU (if torch sees one), library versions, commit."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    out = {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "memory_gb": round(mem_gb, 1),
           "python": platform.python_version()}
    import numpy

    out["numpy"] = numpy.__version__
    if "torch" in sys.modules:
        import torch

        out["torch"] = torch.__version__
        if torch.cuda.is_available():
            out["gpu"] = torch.cuda.get_device_name(0)
    try:
        out["commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        out["commit"] = "unknown"
    return out


def timed(fn) -> float:
    """Seconds ``fn()`` takes (waiting for the GPU where torch has one)."""
    t0 = time.perf_counter()
    fn()
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def best_pair(ours, plain, repeat):
    """Best of ``repeat`` runs each, the two alternating (a machine that drifts favours neither)."""
    a, b = [], []
    for _ in range(repeat):
        a.append(timed(ours))
        b.append(timed(plain))
    return min(a), min(b)


def save(name: str, data: dict) -> Path:
    """Write ``benchmarks/records/<name>.json`` with the machine and the time of the measurement."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {"benchmark": name, "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": machine(), **data}
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path.relative_to(REPO)}")
    return path


def run_study(workdir: Path, configfiles: list, cores: int = 0, targets: tuple = (), extra: tuple = ()) -> dict:
    """Run the workflow from scratch in ``workdir``; wall time (s) of the whole snakemake command and the
    per-rule job seconds from the benchmark files and job logs."""
    workdir.mkdir(parents=True, exist_ok=True)
    # studies name real data as ../shared/data/... from the working directory (the checkout, with ../shared
    # beside it); here the working directory is workdir, so workdir's neighbour stands for the checkout's
    shared, link = REPO.parent / "shared", workdir.parent / "shared"
    if shared.is_dir() and not link.exists():
        link.symlink_to(shared)
    cmd = SNAKEMAKE + ["-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores",
                       str(cores or len(os.sched_getaffinity(0))), "--configfile", *map(str, configfiles),
                       *extra, *targets]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"snakemake failed in {workdir}:\n{proc.stderr[-4000:]}")
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda f: f.stat().st_mtime_ns)
    log = logs[-1].read_text() if logs else ""  # the job stanzas and step counts: the console shows one line per generation
    steps = re.findall(r"(\d+) of (\d+) steps \(100%\) done", proc.stdout + proc.stderr + log)
    return {"wall_s": round(wall, 2), "cpu_s": round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 1),
            "jobs": job_times(workdir), "steps": int(steps[-1][1]) if steps else None}


def tracking_jobs(jobs: dict[str, list[float]]) -> tuple[int, float]:
    """(how many, summed seconds) of the tracking jobs among ``run_study``'s per-rule job seconds."""
    times = [t for rule, ts in jobs.items() if rule.startswith("track") for t in ts]
    return len(times), sum(times)


def job_times(workdir: Path) -> dict[str, list[float]]:
    """Seconds of every finished job by rule: Snakemake's ``benchmark:`` files where the rule has one, else
    the job's own ``*.usage.json`` (written by every job of the package)."""
    out: dict[str, list[float]] = {}
    for usage in Path(workdir).rglob("logs/**/*.usage.json"):
        rule = _rule_of(usage)
        bench = Path(str(usage).removesuffix(".usage.json") + ".benchmark.tsv")
        seconds = job_metrics({"x": bench}).get("job_seconds_x") if bench.is_file() else None
        if seconds is None:
            seconds = float(json.loads(usage.read_text())["seconds"])
        out.setdefault(rule, []).append(seconds)
    return out


def _rule_of(usage: Path) -> str:
    """The rule a job log belongs to, from its name (see rules/*.smk log: patterns)."""
    stem = usage.name.removesuffix(".usage.json")
    parts = usage.parts
    if stem.endswith(".tracking") or stem == "tracking":  # generation 0's (track_gen0) counted with the others
        return "track_block" if stem.startswith("gens") else "track_generation"
    if "tracking" in parts:
        return "track_study" if stem == "study" else "track_group"
    if stem.startswith("gens"):
        return "block"
    if "plot" in parts:
        return "plot"
    return stem
