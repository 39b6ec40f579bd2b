"""What the person at the terminal sees while a study runs: one line per finished generation (or block of
generations) with its headline metric, the time so far and an estimate of the time left; Snakemake's job
stanzas go to its log file only (``.snakemake/log/``, named at the end of the run).

It runs as Snakemake's logger plugin ``ouroboros`` (``snakemake_logger_plugin_ouroboros``, switched on by the
workflow profile: ``logger: [ouroboros]``; ``--logger`` on the command line or ``--workflow-profile none`` give
Snakemake's own console back).  The Snakefile, which runs in the same process, tells it each experiment's
headline metric (:func:`announce`); the lines are read from the metrics file each evaluation job wrote, so the
console shows numbers of the results, never parsed from Snakemake's output.

    [  1m32s] lm/replace/seed0 gen 2: ppl_real 10.92 | 34 of 95 jobs, about 2m10s left
"""
from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

#: experiment label -> (headline metric, its unit); set by the Snakefile (rules/common.smk)
HEADLINES: dict[str, tuple[str, str]] = {}
#: the rules whose finished job completes generations: their ``metrics`` output is read for the line
EVALUATION_RULES = ("evaluate", "block_evaluate")
#: Snakemake's own progress chatter, kept in its log file but not shown (its job stanzas are events, not these)
CHATTER = ("Select jobs to execute", "Execute ", "Building DAG of jobs", "Using shell:", "Provided cores",
           "Provided resources", "Rules claiming more threads", "Assuming unrestricted shared filesystem",
           "host:", "Finished jobid", "Job stats", "Singularity containers", "Conda environments",
           "Resources before job selection", "Ready jobs", "Selected jobs", "Waiting for more resources")


def announce(headlines: dict[str, tuple[str, str]]) -> None:
    """What the console shows of each experiment (called by the Snakefile as it reads the study)."""
    HEADLINES.clear()
    HEADLINES.update(headlines)


def clock(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def number(x: float) -> str:
    """Four significant figures, as the studies tables of docs/studies.md write them."""
    return f"{x:.4g}" if x == x else "nan"


@dataclass
class _Job:
    rule: str
    wildcards: dict
    outputs: list


def _chain_name(w: dict) -> str:
    """``exp/regime/seed0`` (generation 0, shared by a seed's regimes: ``exp/seed0``)."""
    node = w.get("node") or (f"{w['regime']}/seed{w['seed']}" if "regime" in w else f"seed{w.get('seed', '?')}")
    return f"{w.get('exp', '?')}/{node}"


def headline_of(metrics_file: Path, experiment: str) -> Optional[tuple[int, str, float]]:
    """(last generation, metric, value) of an evaluation's metrics file: the experiment's headline metric at the
    file's last generation (None when the file or the metric is not there)."""
    metric = HEADLINES.get(experiment, ("", ""))[0]
    last: Optional[tuple[int, str, float]] = None
    try:
        with open(metrics_file, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("metric") == metric:
                    gen = int(float(row["generation"]))
                    if last is None or gen >= last[0]:
                        last = (gen, metric, float(row["value"]))
    except (OSError, ValueError, KeyError, csv.Error):
        return None
    return last


@dataclass
class Console:
    """The state behind the lines: the jobs announced so far, the progress, the clock."""

    started: float = field(default_factory=time.monotonic)
    jobs: dict = field(default_factory=dict)
    done: int = 0
    total: int = 0

    def job_info(self, record) -> None:
        self.jobs[getattr(record, "jobid", None)] = _Job(getattr(record, "rule_name", ""),
                                                         dict(getattr(record, "wildcards", None) or {}),
                                                         list(getattr(record, "output", None) or []))

    def progress(self, record) -> Optional[str]:
        self.done, self.total = int(getattr(record, "done", 0)), int(getattr(record, "total", 0))
        if self.total and self.done == self.total:
            return f"[{clock(self.elapsed())}] all {self.total} jobs done"
        return None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> str:
        """The time left, from the share of jobs done so far (a rough estimate: jobs differ in length)."""
        if not self.total or not self.done:
            return ""
        if self.done >= self.total:
            return ", done"
        return f", about {clock(self.elapsed() * (self.total - self.done) / self.done)} left"

    def finished(self, record) -> Optional[str]:
        """The line for a finished evaluation job (None for any other job)."""
        job = self.jobs.pop(getattr(record, "job_id", None), None)
        if job is None or job.rule not in EVALUATION_RULES:
            return None
        w = job.wildcards
        metrics = next((Path(str(o).split()[0]) for o in job.outputs if str(o).split()[0].endswith("metrics.csv")),
                       None)
        if job.rule == "evaluate":
            what = f"gen {w.get('gen', '?')}"
        else:
            what = f"gens {w.get('first', '?')}-{w.get('last', '?')}"
        found = headline_of(metrics, w.get("exp", "")) if metrics is not None else None
        if found is None:
            value = "evaluated"
        else:
            gen, metric, x = found
            unit = HEADLINES.get(w.get("exp", ""), ("", ""))[1]
            value = f"{metric} {number(x)}" + (f" {unit}" if unit else "")
            if job.rule == "block_evaluate":
                value += f" at gen {gen}"
        # the progress event of this job comes right after its finished event: count it here
        done = self.done + 1
        jobs = f" | {done} of {self.total} jobs" if self.total else ""
        left = ""
        if self.total and done < self.total:
            left = f", about {clock(self.elapsed() * (self.total - done) / done)} left"
        return f"[{clock(self.elapsed())}] {_chain_name(w)} {what}: {value}{jobs}{left}"


def shown(record, quiet: bool) -> bool:
    """Whether a record that is not one of ours is shown: warnings and errors always; Snakemake's plain messages
    unless they are its progress chatter (job stanzas, shell commands and the run's statistics are not shown)."""
    if record.levelno >= logging.WARNING:
        return True
    if record.levelno < logging.INFO or quiet:
        return False
    event = str(getattr(record, "event", "") or "")
    if event in ("error", "job_error", "group_error"):
        return True
    if event:
        return False
    msg = record.getMessage() if record.msg is not None else ""
    return bool(msg.strip()) and not msg.lstrip().startswith(CHATTER)
