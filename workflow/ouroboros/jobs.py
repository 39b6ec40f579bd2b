"""What each Snakemake job does, in terms of files.

Each function reads its inputs, calls the chain engine and writes its outputs
atomically.  The scripts in ``scripts/`` only unpack the ``snakemake`` object
and call one of these, so every job can also be run from Python.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from ouroboros import backbones
from ouroboros import data as D
from ouroboros import io, paths, seeding, tables
from ouroboros.chain import ChainRun, evaluate_block, run_block, split_metrics, train_items, unstack_models
from ouroboros.config import ChainSpec, real_rng
from ouroboros.curation import INFINITE as CURATION_INFINITE
from ouroboros.targets import make_target
from ouroboros.targets.base import Target
from ouroboros.targets.torch_base import WEIGHT_FILES

log = logging.getLogger("ouroboros")

METRIC_FIELDS = ("generation", "metric", "value")


# -- small file helpers --------------------------------------------------------
def load_real(path) -> dict[str, np.ndarray]:
    return io.load_npz(path, required=("train", "test"))


def load_reference(directory) -> dict[str, np.ndarray]:
    return io.load_npz(Path(directory) / "reference.npz")


def load_samples(directory) -> D.Data:
    """Samples saved in the default format (``samples.npz``)."""
    return D.from_arrays(io.load_npz(Path(directory) / "samples.npz"))


TRAILER = "#end"


def _metrics_digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:16]


class NonFiniteMetric(ValueError):
    """A metric came out infinite (an overflow: a setting out of range); the job stops before writing it."""


def check_metrics_finite(rows, where: str, infinite_ok=frozenset()) -> None:
    """Stop at the first infinite value of a metric not declared in ``infinite_ok`` (NaN, "undefined here",
    passes: a curation step that kept nothing has no mean score)."""
    for g, m, v in rows:
        if math.isinf(v) and m not in infinite_ok:
            raise NonFiniteMetric(f"{where} generation {g}: metric {m} is {v}, not a finite number (an overflow: "
                                  f"check the settings, such as lam, n or the target's parameters); nothing was "
                                  f"written")


def infinite_ok(target: Target) -> frozenset:
    """The metrics of a chain that may be infinite by definition: the target's and the curation scores."""
    return frozenset(target.infinite_metrics) | CURATION_INFINITE


def write_metrics(path, rows: Iterable[tuple[int, str, float]], where: str = "", infinite_ok=frozenset()) -> None:
    """A generation's (or block's) metrics: a CSV, then a trailer line with the row count and a checksum of the
    lines above it, so that a file cut short (at a line boundary or mid-number) is never read as whole.
    An infinite value stops the job (:func:`check_metrics_finite`); ``where`` names the chain in the message."""
    rows = list(rows)
    check_metrics_finite(rows, where, infinite_ok)
    lines = [",".join(METRIC_FIELDS)] + [f"{g},{m},{v!r}" for g, m, v in rows]
    body = "\n".join(lines) + "\n"
    io.save_text(path, body + f"{TRAILER} rows={len(lines) - 1} sha256={_metrics_digest(body)}\n")


def read_metrics(path) -> list[tuple[int, str, float]]:
    """The rows of a file written by :func:`write_metrics`, checked against its trailer."""
    path = Path(path)
    if not path.is_file():
        raise io.IntermediateFileError(f"intermediate file is missing: {path}", path)
    text = path.read_text()
    body, _, last = text.rstrip("\n").rpartition("\n")
    body += "\n"
    if not last.startswith(TRAILER + " "):
        raise io.IntermediateFileError(f"{path} is truncated (no end line)", path)
    try:
        fields = dict(item.split("=", 1) for item in last.split()[1:])
        n_rows, digest = int(fields["rows"]), fields["sha256"]
    except (ValueError, KeyError):
        raise io.IntermediateFileError(f"{path} has a corrupt end line {last!r}", path) from None
    if _metrics_digest(body) != digest:
        raise io.IntermediateFileError(f"{path} does not match its checksum (cut short or edited)", path)
    reader = csv.reader(body.splitlines())
    header = next(reader, None)
    if tuple(header or ()) != METRIC_FIELDS:
        raise io.IntermediateFileError(f"{path} is not a metrics file (header {header})", path)
    try:
        rows = [(int(g), m, float(v)) for g, m, v in reader]
    except ValueError as exc:
        raise io.IntermediateFileError(f"{path} is corrupt: {exc}", path) from exc
    if len(rows) != n_rows:
        raise io.IntermediateFileError(f"{path} holds {len(rows)} rows, its end line says {n_rows}", path)
    return rows


def check_chain_rows(rows: Sequence[tuple[int, str, float]], generations: int, where: str) -> None:
    """A chain's metric rows must cover generations 0..G, each with the same metrics, each once."""
    by_gen: dict[int, list[str]] = {}
    for g, m, _ in rows:
        by_gen.setdefault(g, []).append(m)
    missing = [g for g in range(generations + 1) if g not in by_gen]
    extra = sorted(g for g in by_gen if not 0 <= g <= generations)
    if missing or extra:
        raise io.IntermediateFileError(
            f"metrics of {where} do not cover generations 0..{generations}: "
            + (f"missing {_ranges(missing)}" if missing else "") + (f" unexpected {_ranges(extra)}" if extra else ""))
    names = sorted(by_gen[0])
    for g, ms in sorted(by_gen.items()):
        if sorted(ms) != names:
            dup = sorted({m for m in ms if ms.count(m) > 1})
            lost = sorted(set(names) - set(ms))
            more = sorted(set(ms) - set(names))
            raise io.IntermediateFileError(
                f"metrics of {where}, generation {g}: " + "; ".join(
                    part for part in (f"missing {lost}" if lost else "", f"repeated {dup}" if dup else "",
                                      f"not in generation 0 {more}" if more else "") if part))


def _ranges(gs: Sequence[int]) -> str:
    gs = sorted(gs)
    out, start = [], None
    for i, g in enumerate(gs):
        if start is None:
            start = g
        if i + 1 == len(gs) or gs[i + 1] != g + 1:
            out.append(str(start) if start == g else f"{start}-{g}")
            start = None
    return ", ".join(out)


# -- jobs ------------------------------------------------------------------------
def real_data(spec: dict, out) -> None:
    """``spec``: study, experiment, stream, target, params, n, replicates, seed (see Chain.real_spec)."""
    target = make_target(spec["target"], spec["params"])
    stream = spec.get("stream", spec["experiment"])
    real = target.real_data(real_rng(spec["study"], stream, spec["seed"]), spec["n"], spec["replicates"])
    io.save_npz(out, **real)
    log.info("real data for %s seed %d: %s", spec["experiment"], spec["seed"],
             ", ".join(f"{k} {v.shape}" for k, v in real.items()))


def reference(spec: dict, out_dir, backbone_dir=None) -> None:
    """An experiment's reference material (``backbone_dir``: its converted pretrained model, where it has one)."""
    target = make_target(spec["target"], spec["params"]).attach(backbone=backbone_dir)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    ref = target.reference(seeding.generator(spec["study"], spec.get("stream", spec["experiment"]), "reference"))
    io.save_npz(Path(out_dir) / "reference.npz", **ref)
    log.info("reference for %s: %s", spec["experiment"], sorted(ref) or "nothing needed")


def backbone(model: str, out_dir) -> None:
    """Convert a pretrained model into its backbone cache entry (:func:`ouroboros.backbones.build`)."""
    info = backbones.build(model, out_dir)
    log.info("backbone %s: %s, %.1fM parameters, sha256 %s", model, info["class"], info["parameters"] / 1e6,
             info["sha256"][:12])


def train(spec: dict, gen: int, real_path, sample_dirs: Sequence, model_dir, manifest_path, backbone_dir=None,
          previous_dir=None) -> None:
    """Fit generation ``gen`` on its regime's training set; ``sample_dirs`` hold S_j for each generation j the
    regime reads (:meth:`ChainSpec.reads`; the chain's own curated folders when it curates, which may hold fewer
    items after deduplication; otherwise the drawn samples, of which the chain takes the first ones:
    generation 0's are shared).  The engine receives them as a block job does in memory.  ``backbone_dir``
    and ``previous_dir``: what a target that fits from them reads (:meth:`Target.backbone`,
    :meth:`Target.starts_from_previous`)."""
    chain = ChainSpec.from_params(spec)
    run = ChainRun(chain, load_real(real_path))
    run.template.attach(backbone=backbone_dir, previous=previous_dir)
    sources = chain.reads(gen)
    if len(sources) != len(sample_dirs):
        raise ValueError(f"generation {gen} of {chain.path} reads the samples of generations {sources}, got "
                         f"{len(sample_dirs)} folders")
    for j, d in zip(sources, sample_dirs):
        run.receive_saved(j, run.template.load_samples(d))
    data = run.trainset(gen)
    model = run.fit(gen, data)
    model.save(model_dir)
    io.save_json(manifest_path, {
        "chain": chain.path, "generation": gen, "regime": chain.regime.label, "items_per_replicate": D.size(data),
        "items_min": int(D.counts(data).min()),
        "items_mean": train_items(data),
        "form": "stats" if isinstance(data, D.Summary) else ("masked points" if isinstance(data, D.Masked) else "points"),
        "digest": io.digest(D.to_arrays(data)),
        "real": str(real_path) if chain.regime.uses_real(gen) else None,
        "samples": {str(j): str(d) for j, d in zip(sources, sample_dirs)},
    })
    log.info("%s gen %d: fitted on %d items per replicate", chain.path, gen, D.size(data))


def generate(spec: dict, gen: int, model_dir, samples_dir) -> None:
    """Draw what generation ``gen``'s model supplies: the chain's candidates (generation 0: every regime's)."""
    chain = ChainSpec.from_params(spec)
    run = ChainRun(chain)
    model = Target.load(model_dir, like=run.template)
    drawn = run.draw(gen, model)
    model.save_samples(drawn, samples_dir)
    model.write_sample_artifacts(D.whole(drawn), Path(samples_dir))
    log.info("%s gen %d: drew %d samples per replicate in parts %s (lam=%g)", chain.path, gen,
             sum(chain.emit_parts(gen)), chain.emit_parts(gen), run.lam)


def gen0_like(chain: ChainSpec) -> Target:
    """The target generation 0's model is loaded as: what its own (shared) spec makes."""
    return chain.gen0().target()


def curate(spec: dict, gen: int, samples_dir, model_dir, gen0_dir, reference_dir, out_dir, out_csv) -> None:
    """The chain's curation step on generation ``gen``'s samples: the synthetic data the regime uses, and the
    curation metrics (kept fraction, mean score of kept and all candidates) as rows of generation ``gen``.
    ``reference_dir``: the experiment's curation reference, where the step reads one (a judge), else None."""
    chain = ChainSpec.from_params(spec)
    run = ChainRun(chain, reference=load_reference(reference_dir) if reference_dir else {})
    model = Target.load(model_dir, like=gen0_like(chain) if gen == 0 else run.template)
    run.gen0 = model if gen == 0 else Target.load(gen0_dir, like=gen0_like(chain))
    synthetic, metrics = run.synthetic(gen, model, model.load_samples(samples_dir))
    model.save_samples(synthetic, out_dir)
    write_metrics(out_csv, [(gen, k, v) for k, v in metrics.items()], chain.path, infinite_ok(model))
    log.info("%s gen %d: kept %s of %d candidates per replicate; %s", chain.path, gen, D.counts(synthetic).tolist()[:5],
             chain.n_candidates, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))


def evaluate(spec: dict, gen: int, model_dir, samples_dir, trainset_path, real_path, reference_dir, gen0_dir, out_csv,
             out_distributions=None) -> None:
    """Score generation ``gen``: metrics.csv (with the engine's ``train_items`` from the train job's manifest,
    as a block job reports it), and the target's per-item distributions (an .npz, maybe empty)."""
    chain = ChainSpec.from_params(spec)
    run = ChainRun(chain, load_real(real_path), load_reference(reference_dir))
    model = Target.load(model_dir, like=run.template)
    gen0 = model if gen == 0 else Target.load(gen0_dir, like=gen0_like(chain))
    metrics, distributions = split_metrics(run.evaluate(model, model.load_samples(samples_dir), gen0, t=gen))
    metrics["train_items"] = float(io.load_json(trainset_path)["items_mean"])
    if out_distributions is not None:
        io.save_npz(out_distributions, **distributions)
    write_metrics(out_csv, [(gen, k, v) for k, v in metrics.items()], chain.path, infinite_ok(model))
    log.info("%s gen %d: %s", chain.path, gen, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))


def block(spec: dict, first: int, last: int, real_path, reference_dir, state_path: Optional[str],
          model_paths: Sequence, out_state, out_models, out_chain_metrics) -> None:
    """Generations first..last in one job, without their target metrics (:func:`block_evaluate` scores them);
    resumes from the previous block's state (``model_paths``: the earlier blocks' ``models.npz`` holding the models
    of :meth:`ChainSpec.resume_models`).  ``reference_dir``: the curation reference, where the chain's curation
    step reads one, else None.  Writes every generation's model (stacked), the state the next block resumes
    from and the block's own metrics (``train_items``, the curation step's)."""
    chain = ChainSpec.from_params(spec)
    run = ChainRun(chain, load_real(real_path), load_reference(reference_dir) if reference_dir else {})
    if first > 0:
        if state_path is None:
            raise ValueError(f"block {first}-{last} of {chain.path} needs the state of generation {first - 1}")
        wanted = set(chain.resume_models(first - 1))
        models = [(g, m) for p in model_paths for g, m in unstack_models(io.load_npz(p, ("generation",)), run.template)
                  if g in wanted]
        run.resume(first - 1, io.load_npz(state_path), models)
    result = run_block(run, first, last, evaluate=False)
    io.save_npz(out_models, run.template.compress_models, **result.stacked_models())
    # what the stacked models are, so that ouroboros.load_generation can rebuild any of them without the config
    io.save_json(paths.BlockFiles(str(Path(out_models).parent)).target, {"target": run.template.name,
                                                                         "params": run.template.params})
    write_metrics(out_chain_metrics, result.metrics, chain.path, infinite_ok(run.template))
    io.save_npz(out_state, **result.state)


def block_evaluate(spec: dict, first: int, last: int, real_path, reference_dir, models_path, state_path,
                   chain_metrics_path, out_metrics) -> None:
    """Score a block's generations (:func:`ouroboros.chain.evaluate_block`): each stacked model re-draws its samples
    with its own stream and is scored as the block would have scored it in memory; generation 0's model is the
    block's state's.  ``metrics.csv``: every generation's target metrics, then the block job's rows."""
    chain = ChainSpec.from_params(spec)
    run = ChainRun(chain, load_real(real_path), load_reference(reference_dir))
    check_block_target(Path(models_path).parent, run.template)
    models = unstack_models(io.load_npz(models_path, ("generation",)), run.template)
    got = [g for g, _ in models]
    if got != list(range(first, last + 1)):
        raise io.IntermediateFileError(f"{models_path} holds generations {_ranges(got)}, not {first}-{last}",
                                       models_path)
    state = io.load_npz(state_path)
    gen0 = run.template.clone().set_state({k[len("gen0."):]: v for k, v in state.items() if k.startswith("gen0.")})
    rows = evaluate_block(run, models, gen0, read_metrics(chain_metrics_path))
    write_metrics(out_metrics, rows, chain.path, infinite_ok(run.template))
    log.info("%s gens %d-%d: %d metrics scored", chain.path, first, last, len(rows))


def check_block_target(block_dir, template: Target) -> None:
    """A block's ``target.json`` must describe the model the chain's settings make (those its training read)."""
    path = paths.BlockFiles(str(block_dir)).target
    meta = io.load_json(path)
    problem = template.stale_settings(meta.get("params", {})) if meta.get("target") == template.name else (
        f"it describes a {meta.get('target')} model, not {template.name}")
    if problem:
        raise io.IntermediateFileError(f"{path}: {problem}", path)


def prune(model_dir, keep: str, out_receipt) -> None:
    """Remove the weights of a generation its chain does not keep (``keep``), once every job reading them is done;
    the receipt records each removed file's bytes and sha256, and the folder keeps the model's description."""
    model_dir = Path(model_dir)
    removed = {}
    for name in WEIGHT_FILES:
        f = model_dir / name
        if f.is_file():
            removed[name] = {"bytes": f.stat().st_size, "sha256": io.file_sha256(f)}
    io.save_json(out_receipt, {"keep": keep, "model": str(model_dir), "removed": removed,
                               "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
    for name in removed:
        (model_dir / name).unlink()
    log.info("%s: removed %s (%.1f MB; keep: %s)", model_dir, ", ".join(removed) or "nothing",
             sum(r["bytes"] for r in removed.values()) / 1e6, keep)


def collect(chains: Sequence[dict], files: Sequence[Sequence[str]], out_csv,
            generations: Optional[Sequence[int]] = None, out_settings=None, out_summary=None) -> None:
    """The study's tables (see :mod:`ouroboros.tables`): the narrow metrics table, one row per (chain, generation,
    metric); the settings of each (experiment, regime); the last generation's mean / min / max over seeds.
    Each chain's files must hold generations 0..G (``generations``) with the same metrics in each.  The tables
    written are also linked into ``last/`` beside them (:func:`ouroboros.paths.last_tables`): a later collect that
    fails (after Snakemake deleted its outputs) leaves them there, and says so."""
    last = Path(out_csv).parent / paths.LAST_TABLES
    try:
        _collect(chains, files, out_csv, generations, out_settings, out_summary)
    except Exception:
        if (last / Path(out_csv).name).is_file():
            log.error("the study's last complete tables (written by the previous collect) are kept in %s/", last)
            print(f"(the study's last complete tables, from the previous collect, are kept in {last}/)",
                  file=sys.stderr)
        raise
    keep_last_tables([f for f in (out_csv, out_settings, out_summary) if f is not None], last)


def keep_last_tables(files: Sequence, folder: Path) -> None:
    """Hard links to the tables just written, in ``folder`` (a copy where the file system has no hard links)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in map(Path, files):
        tmp = folder / f".{f.name}.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(f, tmp)
        except OSError:
            shutil.copy2(f, tmp)
        os.replace(tmp, folder / f.name)


def _collect(chains, files, out_csv, generations, out_settings, out_summary) -> None:
    import pandas as pd

    frames = []
    for i, (columns, chain_files) in enumerate(zip(chains, files)):
        rows = [r for p in chain_files for r in read_metrics(p)]
        if generations is not None:
            check_chain_rows(rows, int(generations[i]),
                             f"{columns['experiment']}/{columns['regime']}/seed{columns['seed']}")
        df = pd.DataFrame(rows, columns=list(METRIC_FIELDS))
        for k in tables.NARROW:
            if k not in METRIC_FIELDS:
                df[k] = columns[k]
        frames.append(df)
    table = pd.concat(frames, ignore_index=True)[list(tables.NARROW)]
    table = table.sort_values(["experiment", "regime", "seed", "metric", "generation"], kind="stable")
    tables.write_csv(table, out_csv)
    if out_settings is not None:
        tables.write_csv(pd.DataFrame(tables.settings_rows(chains), dtype=object), out_settings)  # 40, not 40.0
    if out_summary is not None:
        tables.write_csv(tables.summary(table), out_summary)
    log.info("wrote %d rows for %d chains to %s", len(table), len(chains), out_csv)
