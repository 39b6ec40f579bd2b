"""What a study costs before it runs: its jobs, the largest job's memory, the disk it writes and its time.

``ouroboros check FILE`` prints all of it; the workflow's preflight (:func:`ouroboros.preflight.prepare`) refuses
a study whose largest job cannot fit in memory or whose files cannot fit on the disk, in one line naming the
figure.  How each figure is reckoned (docs/reliability.md, "Costs before the run"):

* **memory** of a job: what :func:`job_bytes` counts (its data, the models it holds), the
  runtime's own (Python, numpy, torch, transformers: :meth:`Target.runtime_bytes`) and, for a fit by gradient
  descent, the gradients, Adam's two moments and a batch's activations (:meth:`Target.fit_bytes`: 12 bytes per
  trained float32 parameter, so 4x the weights with them for a full fine-tune);
* **disk**: every generation's saved model (in its ``weights_dtype``; a generation ``keep`` removes counts only
  until it is removed, so the peak and what stays are both given), its samples, a backbone not yet in the cache,
  and MLflow's copies (none for a file it shares with the generation, :func:`ouroboros.mlflow_models.share_files`;
  the array models and sample previews it does copy);
* **time** (``ouroboros check`` only): a probe (:func:`probe`) runs each target's own fit, sample and evaluate at
  a small size in a subprocess (:meth:`Target.probe_params`), measuring seconds per unit of :meth:`Target.work`,
  its imports and its model's loading; every job of the study is then its start-up plus its units at those
  rates, and the study's wall time the larger of its job-seconds over the cores and its longest chain.
"""
from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ouroboros import backbones, paths
from ouroboros.chain import ChainRun, evaluate_block
from ouroboros.config import Study
from ouroboros.seeding import generator
from ouroboros.targets import make_target
from ouroboros.targets.base import Target
from ouroboros.units import backbone_models, blocks, pruned_generations, tracking_groups

GB = 1024 ** 3
#: what Snakemake spends per job around the job's own process (its script preamble, the benchmark, the bookkeeping)
SNAKEMAKE_JOB_S = 1.0
#: a tracking job: Python, MLflow's import and the store's opening; then per logged generation (measured: 3-9
#: writes at 3-5 ms, a model 40-100 ms)
TRACK_JOB_S, TRACK_GENERATION_S = 4.0, 0.3
#: bytes MLflow keeps per logged generation besides a model's shared files (its MLmodel, environment files,
#: the array model's own copy of small arrays, sample previews)
MLFLOW_RUN_BYTES = 64 * 1024


@dataclass
class Jobs:
    """Jobs of one rule of one experiment with the same shape."""

    rule: str
    experiment: str
    count: int
    #: units of work of each stage per job (Target.work; times replicates)
    work: dict = field(default_factory=dict)
    #: resident memory of one job
    memory: int = 0
    #: bytes one job writes under results/ (what stays; a removed generation's weights count in ``transient``)
    writes: int = 0
    transient: int = 0
    #: what a job loads before its work (models: its own and generation 0's)
    loads: int = 0
    #: one chain's share of the study's longest path (train and generate jobs follow each other)
    chained: bool = False
    #: how ``memory`` was reckoned
    how: str = ""
    #: a block's regime and the items each of its generations fits on (timed by the engine's probe)
    regime: str = ""
    fit_items: tuple = ()

    def extra_seconds(self, rates: dict) -> float:
        """A block job's (or its evaluation job's) seconds from the chain engine's probe of its regime."""
        probed = rates["regimes"]
        # an experiment that borrows another's probe (same target, other settings: a sweep) may run regimes the
        # probe did not: their cost per generation is still c0 + c1 x its own fit items, from the first probed
        r = probed.get(self.regime) or next(iter(probed.values()))
        if self.rule == "block":
            return sum(r["c0"] + r["c1"] * k for k in self.fit_items)
        return len(self.fit_items) * r["evaluate"]


@dataclass
class Estimate:
    jobs: list[Jobs]
    backbones: dict  # key -> (model, bytes) still to convert
    mlflow_bytes: int
    tracking_jobs: int
    rates: dict = field(default_factory=dict)  # experiment -> probe record
    #: filled by :func:`timed`
    job_seconds: float = 0.0
    wall_seconds: float = 0.0
    longest_chain_seconds: float = 0.0
    #: bytes the study's folder held when the estimate was made (filled by the preflight)
    written: int = 0

    @property
    def count(self) -> int:
        return sum(j.count for j in self.jobs) + len(self.backbones) + self.tracking_jobs

    @property
    def peak_job(self) -> Optional[Jobs]:
        return max(self.jobs, key=lambda j: j.memory, default=None)

    @property
    def results_bytes(self) -> int:
        return sum(j.count * j.writes for j in self.jobs) + sum(b for _, b in self.backbones.values())

    @property
    def transient_bytes(self) -> int:
        return sum(j.count * j.transient for j in self.jobs)

    @property
    def disk_bytes(self) -> int:
        """What the study writes at its largest (before ``keep`` removes weights): results and MLflow."""
        return self.results_bytes + self.transient_bytes + self.mlflow_bytes


def _gb(x: float) -> str:
    return f"{x / GB:.3g} GB" if x >= 0.1 * GB else f"{x / 1024 ** 2:.3g} MB"


def _duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else (f"{s // 60} min {s % 60:02d} s" if s >= 60
                                                                        else f"{s} s")


# -- the jobs of a study -------------------------------------------------------------------------------
def _memory(**parts: int) -> tuple[int, str]:
    """(total, how) of a job's memory from its named parts (bytes)."""
    shown = ", ".join(f"{k.replace('_', ' ')} {_gb(v)}" for k, v in parts.items() if v)
    return sum(parts.values()), shown


def machine_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 16 * GB


def job_bytes(chain) -> tuple[int, str]:
    """An estimate of the memory one job of the chain holds, and how it was reckoned: real training data,
    the training set (with an accumulated pool of points), the drawn candidates, and the models a block keeps."""
    e = chain.experiment
    target = e.make_target()
    job = chain.job
    items = 2 * e.n + job.n_candidates
    if chain.regime.pools and not job.pool_as_stats:  # a pool of points
        items += job.n_synthetic * e.generations
    elif not chain.regime.pools:  # the synthetic data held besides the last generation's (a window)
        items += job.n_synthetic * max(0, chain.regime.most_sources(e.generations) - 1)
    models = min(e.block, e.generations + 1) if e.block > 1 else 2  # a block holds at most the chain's generations
    per_replicate = items * target.item_bytes() + models * target.model_bytes()
    total = 2 * e.replicates * per_replicate  # working copies
    how = (f"{e.replicates:,} replicates x ({items:,} items x {target.item_bytes()} B"
           + (f" + {models:,} models x {target.model_bytes():,} B" if target.model_bytes() else "") + ") x 2")
    return total, how



def estimate(study, tracking: dict) -> Estimate:
    """The study's jobs by rule and experiment, with each job's memory and what it writes (no time yet)."""
    jobs: list[Jobs] = []
    todo: dict = {}
    for key, model in backbone_models(study).items():
        if not Path(paths.backbone_dir(key)).is_dir():
            target = next(e.make_target() for e in study.experiments if e.make_target().backbone() == model)
            todo[key] = (model, 4 * target.parameters())
    mlflow = 0
    for e in study.experiments:
        target = e.make_target()
        chains = [c for c in study.chains if c.experiment is e]
        R = e.replicates
        item = target.item_bytes()
        data = 2 * e.n * R * item  # the real training and (about as many) test items
        run = target.runtime_bytes()
        model_mem = target.model_bytes() * R
        saved = target.saved_model_bytes() * R

        def add(rule, work=None, count=1, chained=False, writes=0, transient=0, loads=0, regime="", fit_items=(),
                **parts):
            memory, how = _memory(runtime=run, **parts)
            jobs.append(Jobs(rule, e.label, count, dict(work or {}), memory, writes, transient, loads, chained, how,
                             regime, tuple(fit_items)))

        add("real_data", count=len(e.seeds), data=data, writes=e.n * R * item)
        add("reference", data=data, model=model_mem, writes=1 << 20)
        if any(c.job.curation() and c.job.curation().reads_reference for c in chains):
            add("curation_reference", data=data, model=model_mem, writes=1 << 20)
        for c in chains:
            job = c.job
            if e.block > 1:
                block_data, _ = job_bytes(c)
                for a, b in blocks(c):
                    gens = range(a, b + 1)
                    fit = sum(target.work("fit", c.regime.train_size(e.n, t)) for t in gens) * R
                    draw = sum(target.work("sample", sum(job.emit_parts(t))) for t in gens) * R
                    scored = sum(target.work("evaluate", max(sum(job.emit_parts(t)), target.min_eval_items()))
                                 for t in gens) * R
                    items = [_fit_items(c, t) for t in gens]
                    add("block", {"fit": fit, "sample": draw}, chained=True, writes=(b - a + 3) * saved,
                        regime=c.regime.label, fit_items=items, data_and_models=block_data,
                        training=target.fit_bytes(e.n))
                    add("block_evaluate", {"sample": draw, "evaluate": scored}, writes=64 * (b - a + 1),
                        regime=c.regime.label, fit_items=items, data_and_models=block_data)
                    every = tracking.get("every", 1)
                    mlflow += MLFLOW_RUN_BYTES * len([g for g in gens if g % every == 0 or g == b])
                continue
            pruned = set(pruned_generations(c))
            first_of_seed = c is next(x for x in chains if x.seed == c.seed)  # it runs the shared generation 0
            for g in range(0 if first_of_seed else 1, e.generations + 1):
                n_train = c.regime.train_size(e.n, g)
                n_draw = sum(job.emit_parts(g))
                samples = n_draw * R * item
                keeps = g not in pruned
                add("train", {"fit": target.work("fit", n_train) * R}, chained=True, writes=saved if keeps else 0,
                    transient=0 if keeps else saved, data=2 * n_train * R * item, model=model_mem,
                    training=target.fit_bytes(n_train))
                add("generate", {"sample": target.work("sample", n_draw) * R}, chained=True, writes=samples,
                    loads=1, model=model_mem, samples=2 * samples)
                scored = max(n_draw, target.min_eval_items())
                add("evaluate", {"evaluate": target.work("evaluate", scored) * R}, writes=64 * 1024, loads=2,
                    data=data, models=2 * model_mem, samples=2 * samples, scoring=target.score_bytes())
                if not keeps:
                    add("prune")
                mlflow += MLFLOW_RUN_BYTES + (saved if keeps and saved < 16 * 1024 else 0)
            if job.curation() is not None:
                n_cand = job.n_candidates
                samples = n_cand * R * item
                add("curate", {"evaluate": target.work("evaluate", n_cand) * R}, count=e.generations + 1,
                    chained=True, writes=samples, loads=2, models=2 * model_mem, samples=2 * samples,
                    scoring=target.score_bytes())
    jobs = _merged(jobs)
    groups = (len(tracking_groups(study, tracking["chains_per_job"], tracking["every"], tracking["parent_points"]))
              if tracking.get("enabled") else 0)
    return Estimate(jobs, todo, mlflow if groups else 0, groups + (1 if groups else 0))


def _merged(jobs: list[Jobs]) -> list[Jobs]:
    """Jobs of one rule and experiment with the same shape counted together."""
    out: dict = {}
    for j in jobs:
        key = (j.rule, j.experiment, json.dumps(j.work, sort_keys=True), j.memory, j.writes, j.transient, j.loads,
               j.chained, j.how, j.regime, j.fit_items)
        if key in out:
            out[key].count += j.count
        else:
            out[key] = j
    return list(out.values())


# -- the time: a probe of each experiment ----------------------------------------------------------------
#: generations a block-mode probe runs (after generation 0, whose first calls pay imports and warm-ups)
PROBE_GENERATIONS = 4


def _fit_items(chain, t: int) -> int:
    """Items generation t's fit reads: the training set, or n where a pool is kept as statistics."""
    job = chain.job
    return job.n if chain.regime.pools and job.pool_as_stats else chain.regime.train_size(job.n, t)


def probe_blocks(study, label: str) -> dict:
    """Run the first generations of each regime's first chain of a block-mode experiment as its block and
    evaluation jobs do, and time each generation: regime -> {gen, fit_items} per generation and {evaluate} per
    generation; the cost of a generation is then fitted as c0 + c1 x its fit items."""
    out: dict = {}
    e = study.experiment(label)
    for regime in e.regimes:
        chain = next(c for c in study.chains if c.experiment is e and c.regime == regime)
        target = e.make_target()
        real = target.real_data(chain.job.real_rng(), e.n, e.replicates)
        ref = target.reference(generator(chain.study, e.stream, "reference"))
        run = ChainRun(chain, real, ref)
        last = min(PROBE_GENERATIONS, e.generations)
        times, items = [], []
        for t in range(last + 1):
            t0 = time.perf_counter()
            model = run.step(t, evaluate=False)[0]
            times.append(time.perf_counter() - t0)
            items.append(_fit_items(chain, t))
        t0 = time.perf_counter()
        evaluate_block(run, [(last, target.clone().set_state(model.get_state()))], run.gen0)
        evaluate = time.perf_counter() - t0
        rows = np.array(items[1:] or items, dtype=float)
        secs = np.array(times[1:] or times)
        if len(set(rows)) > 1:
            c1, c0 = np.polyfit(rows, secs, 1)
            c1, c0 = max(float(c1), 0.0), max(float(c0), 0.0)
        else:
            c0, c1 = float(np.mean(secs)), 0.0
        out[regime.label] = {"c0": c0, "c1": c1, "evaluate": evaluate}
    return out


def probe(target_name: str, params: dict, n: int, replicates: int, lam: float, workdir: str = ".") -> dict:
    """Run a target's fit, sample, evaluate and save/load at a small size (its :meth:`Target.probe_params`) in
    this process and time them: {imports, reference, save, load: seconds, peak_rss: bytes, fit/sample/evaluate:
    [seconds, units of Target.work]}.  A warm-up fit and draw come first (their first calls import and
    allocate); a fit that loads a pretrained model pays that load apart (``load``).  A pretrained model is
    converted into the backbone cache first (``converted``: seconds), where the study's run then finds it."""
    t0 = time.perf_counter()
    os.chdir(workdir)
    full = make_target(target_name, params)
    target = make_target(target_name, full.probe_params())
    if hasattr(target, "p"):  # a torch target: its imports are part of every job's start
        import torch  # noqa: F401
    out: dict = {}
    if target.backbone():
        out["imports"] = time.perf_counter() - t0
        entry = backbones.entry(target.backbone())
        if not Path(entry).is_dir():
            t = time.perf_counter()
            tmp = Path(f"{entry}.probe-{os.getpid()}")
            backbones.build(target.backbone(), tmp)
            tmp.rename(entry)
            out["converted"] = time.perf_counter() - t
        target.attach(backbone=entry)
    else:
        out["imports"] = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    n_fit = max(2, min(n, target.probe_items("fit")))
    real = target.real_data(rng, n_fit, replicates)
    target.clone().fit(real["train"], rng).sample(2, lam, rng)  # warm-up: first calls import and allocate
    t = time.perf_counter()
    model = target.clone().fit(real["train"], rng)
    fit = time.perf_counter() - t
    n_draw = max(2, min(n, target.probe_items("sample")))
    t = time.perf_counter()
    drawn = model.sample(n_draw, lam, rng)
    out["sample"] = [time.perf_counter() - t, target.work("sample", n_draw) * replicates]
    t = time.perf_counter()
    ref = target.reference(rng)
    out["reference"] = time.perf_counter() - t
    t = time.perf_counter()
    model.evaluate(drawn, real, ref, model)
    out["evaluate"] = [time.perf_counter() - t, target.work("evaluate", n_draw) * replicates]
    out["load"] = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        model.save(Path(tmp) / "model")
        out["save"] = time.perf_counter() - t
        t = time.perf_counter()
        Target.load(Path(tmp) / "model", like=target)
        out["load"] = time.perf_counter() - t
    if target.backbone():  # the fit loaded the backbone: a train job's start, not work per token
        fit = max(fit - out["load"], 0.1 * fit)
    out["fit"] = [fit, target.work("fit", n_fit) * replicates]
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def _run_probe(spec: dict, workdir: str, timeout: float, threads: int) -> dict:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ouroboros.costs", json.dumps(spec)], capture_output=True, text=True,
                          timeout=timeout, cwd=workdir, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    wall = time.perf_counter() - t
    if proc.returncode:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        raise RuntimeError(f"the time probe of {spec.get('label')} failed: {lines[-1] if lines else proc.returncode}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall"] = wall
    return out


def probe_in_subprocess(e, config: dict, workdir: str = ".", timeout: float = 900) -> dict:
    """A probe of experiment ``e`` in a fresh Python process (its imports and memory are a job's): the chain engine
    for a block-mode experiment (:func:`probe_blocks`), the target's own calls otherwise (:func:`probe`); the
    interpreter's start is added to the imports."""
    threads = e.make_target().threads(e.n, e.replicates)
    if e.block > 1:
        out = _run_probe({"blocks": e.label, "config": config, "label": e.label}, workdir, timeout, threads)
        out["imports"] = max(0.0, out["wall"] - out.pop("inner"))
        return out
    out = _run_probe({"target": e.target, "params": e.params, "n": e.n, "replicates": e.replicates, "lam": e.lam,
                      "workdir": str(workdir), "label": e.label}, workdir, timeout, threads)
    inner = sum(v[0] if isinstance(v, list) else v for k, v in out.items() if k not in ("peak_rss", "wall"))
    out["imports"] += max(0.0, out["wall"] - inner)
    return out


def timed(est: Estimate, study, cores: int, workdir: str = ".", probes: int = 8) -> Estimate:
    """Fill the time figures of ``est`` from a probe of each experiment (at most ``probes`` of them; the others
    take the rates of a probed experiment of their target)."""
    by_target: dict[str, dict] = {}
    for e in study.experiments:
        if len(est.rates) < probes:
            est.rates[e.label] = probe_in_subprocess(e, study.config, workdir)
            by_target.setdefault(e.target, est.rates[e.label])
        elif e.target in by_target:
            est.rates[e.label] = by_target[e.target]
    per_chain: dict[str, float] = {}
    total = 0.0
    for j in est.jobs:
        r = est.rates.get(j.experiment)
        if r is None:
            continue
        seconds = SNAKEMAKE_JOB_S + r["imports"] + j.loads * r.get("load", 0.0)
        if j.rule == "train":
            seconds += r.get("save", 0.0) + (r.get("load", 0.0) if "converted" in r or r.get("backbone") else 0.0)
        if j.rule in ("reference", "curation_reference"):
            seconds += r.get("reference", 0.0)
        if "regimes" in r and j.rule in ("block", "block_evaluate"):
            seconds += j.extra_seconds(r)
        else:
            for stage, units in j.work.items():
                sec, probe_units = r[stage]
                seconds += sec / max(probe_units, 1e-9) * units
        total += j.count * seconds
        if j.chained:
            chains = max(1, sum(1 for c in study.chains if c.experiment.label == j.experiment))
            per_chain[j.experiment] = per_chain.get(j.experiment, 0.0) + j.count * seconds / chains
    for key, (model, _) in est.backbones.items():
        converted = next((r["converted"] for r in est.rates.values() if "converted" in r), 0.0)
        total += converted + SNAKEMAKE_JOB_S
    total += est.tracking_jobs * TRACK_JOB_S + TRACK_GENERATION_S * sum(
        j.count for j in est.jobs if j.rule in ("train", "block"))
    est.job_seconds = total
    est.longest_chain_seconds = max(per_chain.values(), default=0.0)
    est.wall_seconds = max(total / max(cores, 1), est.longest_chain_seconds)
    return est


# -- what the machine has -------------------------------------------------------------------------------
def free_disk(folder: str = ".") -> int:
    """Free bytes on the file system that holds ``folder`` (its nearest existing parent)."""
    probe_dir = Path(folder).resolve()
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    return shutil.disk_usage(probe_dir).free


def available_memory() -> int:
    """Memory available to a new process (MemAvailable), else the machine's."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return machine_memory()


def written(study_name: str) -> int:
    """Bytes the study's folder already holds (what a resumed run need not write again)."""
    total = 0
    for root, _, files in os.walk(paths.results(study_name)):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def describe(est: Estimate, study_name: str, cores: int) -> list[str]:
    """The lines ``ouroboros check`` prints."""
    peak = est.peak_job
    lines = []
    if peak is not None:
        probed = [r["peak_rss"] for r in est.rates.values() if "peak_rss" in r]
        lines.append(f"  memory: the largest job ({peak.rule} of {peak.experiment}) about {_gb(peak.memory)} ({peak.how})"
                     + (f"; the probes peaked at {_gb(max(probed))}" if probed else "")
                     + f"; available here {_gb(available_memory())}")
    keep = f" (at most {_gb(est.disk_bytes)} before keep removes weights)" if est.transient_bytes else ""
    new = "; " + ", ".join(f"{m} converted once ({_gb(b)})" for m, b in est.backbones.values()) if est.backbones else ""
    lines.append(f"  disk: about {_gb(est.results_bytes + est.mlflow_bytes)} ({_gb(est.results_bytes)} results, "
                 f"{_gb(est.mlflow_bytes)} MLflow){keep}{new}; already written {_gb(written(study_name))}; free here "
                 f"{_gb(free_disk(paths.results(study_name)))}")
    if est.rates:
        lines.append(f"  time: about {_duration(est.wall_seconds)} on {cores} cores ({_duration(est.job_seconds)} of "
                     f"jobs; the longest chain {_duration(est.longest_chain_seconds)}), from a probe of each "
                     "experiment's fit, sample and evaluate here")
    return lines


def summary_line(est: Estimate, study_name: str) -> str:
    """One line for the start of a run: the largest job's memory and the disk the study writes, beside what this
    machine has (the time needs the probe of ``ouroboros check``)."""
    peak = est.peak_job
    memory = f"the largest job ({peak.rule} of {peak.experiment}) about {_gb(peak.memory)}" if peak else "no jobs"
    return (f"Study {study_name}: {memory} of {_gb(available_memory())} available; about "
            f"{_gb(max(est.disk_bytes - est.written, 0))} more to write ({_gb(free_disk(paths.results(study_name)))} "
            "free); its time: ouroboros check FILE")


def _by_rule(est: Estimate) -> dict[str, int]:
    out: dict[str, int] = {}
    for j in est.jobs:
        out[j.rule] = out.get(j.rule, 0) + j.count
    if est.backbones:
        out["backbone"] = len(est.backbones)
    if est.tracking_jobs:
        out["tracking"] = est.tracking_jobs
    return out


def main(argv=None) -> int:
    """A probe in this process (what :func:`probe_in_subprocess` runs): a JSON spec in, a JSON record out."""
    t0 = time.perf_counter()
    spec = json.loads((argv or sys.argv[1:])[0])
    if "blocks" in spec:
        study = Study.from_config(spec["config"], checked=True)
        t1 = time.perf_counter()
        out = {"regimes": probe_blocks(study, spec["blocks"])}
        out["inner"] = time.perf_counter() - t1
        out["startup"] = t1 - t0
    else:
        out = probe(spec["target"], spec["params"], spec["n"], spec["replicates"], spec["lam"], spec["workdir"])
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
