"""The recursive loop: train on data, sample, curate, build the next training set, repeat.

:class:`ChainRun` holds what a chain needs between generations: the real
data, the generation-0 and latest models, and the synthetic data S_j that a
later generation still reads, by generation (what the regime declares with
``sources``; for regimes that pool, real + S_0 + ... folded into one
:class:`~ouroboros.regimes.Pool`).  The same :meth:`ChainRun.receive`,
:meth:`ChainRun.trainset`, fit, draw, curate and evaluate calls serve both
ways the workflow runs a chain:

* one generation per job (train, generate, curate and evaluate rules; models
  and samples are files: a train job :meth:`receives <ChainRun.receive>` the
  S_j its regime reads from their folders), and
* a block of k generations per job (:func:`run_block`), keeping everything in
  memory and writing every generation's model stacked in ``models.npz``.

Every random draw comes from ``chain.rng(generation, purpose)``, so both give
the same numbers for the same config, whatever the block size or ``--cores``.
Samples are never needed from disk in block mode: S_j is re-drawn from model j
with its own stream when a later block needs it (:meth:`ChainRun.resume`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional, Union

import numpy as np

from ouroboros import data as D
from ouroboros.config import Chain, ChainSpec
from ouroboros.curation import Context
from ouroboros.regimes import Pool, Sources
from ouroboros.targets.base import Target
from ouroboros.targets.capabilities import stats_sufficient

log = logging.getLogger("ouroboros")

#: metrics the engine reports for every chain, beside the target's and the curation step's
METRICS = {"train_items": "items in the generation's training set, mean over replicates (real and synthetic; "
                          "it grows under the accumulating regimes)"}


def train_items(data: D.Data) -> float:
    """The ``train_items`` metric of a training set."""
    return float(np.mean(D.counts(data)))


class ChainRun:
    def __init__(self, chain: Union[Chain, ChainSpec], real: Optional[dict[str, np.ndarray]] = None,
                 reference: Optional[dict[str, np.ndarray]] = None):
        """``chain``: what the chain's jobs get (a :class:`ChainSpec`), or a study's :class:`Chain` (its ``job``)."""
        chain = chain.job if isinstance(chain, Chain) else chain
        self.chain = chain
        self.template = chain.target()
        self.regime = chain.regime
        self.n = chain.n
        self.lam = chain.lam
        self.replicates = chain.replicates
        self.real = real
        self.reference = reference
        self.gen0: Optional[Target] = None
        self.model: Optional[Target] = None
        #: S_j by generation, for the j a later generation still reads (regimes that do not pool)
        self.held: dict[int, D.Data] = {}
        #: real + S_0 + ... + S_{pooled - 1} (regimes that pool)
        self.pool: Optional[Pool] = (Pool(real["train"], self.pool_as_stats, self._summarize)
                                     if self.regime.pools and real else None)
        self.pooled = 0
        self.curation = chain.curation()

    @property
    def pool_as_stats(self) -> bool:
        return self.chain.pool_as_stats

    @property
    def _summarize(self):
        """How a pool kept as statistics summarises points (the target's sufficient statistics)."""
        return self.template.summarize if self.pool_as_stats else D.Stats.from_points

    @property
    def n_synthetic(self) -> int:
        return self.chain.n_synthetic

    # -- the data a generation reads ---------------------------------------------------
    def receive(self, j: int, synthetic: D.Data) -> None:
        """S_j is known (drawn here, read from its folder, or re-drawn): fold it into the pool, or hold it while
        a later generation reads it (``sources(j + 1)`` says which; nothing dropped is read again)."""
        if self.regime.pools:
            if self.pool is None:
                raise ValueError(f"{self.chain.path}: a pooling regime needs the real data first")
            if j != self.pooled:
                raise ValueError(f"{self.chain.path}: the pool takes generations in order; got {j}, expected "
                                 f"{self.pooled}")
            self.pool.add(synthetic)
            self.pooled += 1
            return
        self.held[j] = synthetic
        keep = set(self.regime.sources(j + 1))
        self.held = {g: s for g, s in self.held.items() if g in keep}

    def receive_saved(self, j: int, saved: D.Data) -> None:
        """:meth:`receive` S_j as a generation's folder holds it: curated data as they are; drawn samples of
        which this chain takes the first ones (generation 0's are shared by the regimes)."""
        self.receive(j, saved if self.curation is not None else D.take_first(saved, self.chain.n_synthetic))

    def sources(self, t: int) -> Sources:
        """What generation t's training set is built from: exactly what the regime declares."""
        if self.real is None:
            raise ValueError(f"{self.chain.path}: building a training set needs the real data")
        if self.regime.pools:
            if self.pooled != t:
                raise ValueError(f"{self.chain.path} generation {t} reads the pool of generations 0..{t - 1}, "
                                 f"which holds 0..{self.pooled - 1}")
            synthetic, pool = {}, self.pool.data()
        else:
            wanted = self.regime.sources(t)
            missing = [j for j in wanted if j not in self.held]
            if missing:
                raise ValueError(f"{self.chain.path} generation {t} reads the synthetic data of generations "
                                 f"{missing}, which the chain does not hold (regime {self.regime.label}: does "
                                 f"sources(t + 1) lie within sources(t) + [t]?)")
            synthetic, pool = {j: self.held[j] for j in wanted}, None
        return Sources(t=t, n=self.n, real=self.real["train"] if self.regime.uses_real(t) else None,
                       synthetic=synthetic, pool=pool, rng=self.chain.rng(t, "trainset"),
                       draw_real=lambda rng, m: self.template.draw_real(rng, m, self.replicates),
                       summarize=self.template.summarize if stats_sufficient(self.template) else None)

    def trainset(self, t: int) -> D.Data:
        """Generation t's training set: the real training set at t = 0, else what the regime builds."""
        if t == 0:
            return self.real["train"]
        return self.regime.build(self.sources(t))

    # -- the steps of a generation ---------------------------------------------------
    def fit(self, t: int, data: D.Data) -> Target:
        model = self.template.clone()
        if t > 0 and self.model is not None and model.starts_from_previous():  # a warm start within a block
            model.start_from(self.model)
        return model.fit(data, self.chain.rng(t, "fit"))

    def draw(self, t: int, model: Target) -> D.Data:
        """What generation t's model draws: the chain's candidates; at t = 0 every regime's, in parts."""
        sizes, rng = self.chain.emit_parts(t), self.chain.rng(t, "sample")
        if self.chain.keeps_statistics(t):
            return model.sample_summaries(sizes, self.lam, rng)
        if self.chain.needs_items(t):  # generation 0 drawn as items for the experiment's neediest regime
            model = model.drawing_points()
        return model.sample_parts(sizes, self.lam, rng)

    def synthetic(self, t: int, model: Target, drawn: Optional[D.Data] = None) -> tuple[D.Data, dict[str, float]]:
        """S_t: this chain's share of what model t drew (the first items), curated if the chain curates;
        with the curation metrics."""
        drawn = self.draw(t, model) if drawn is None else drawn
        candidates = D.take_first(drawn, self.chain.n_candidates)
        if self.curation is None:
            return candidates, {}
        ctx = Context(model=model, gen0=model if t == 0 else self.gen0, target=self.template,
                      reference=self.reference or {}, rng=self.chain.rng(t, "curate"))
        return self.curation.apply(candidates, self.n_synthetic, ctx)

    def sample(self, t: int, model: Target) -> D.Data:
        """S_t drawn afresh from model t with its own streams (the same items every time)."""
        return self.synthetic(t, model)[0]

    def evaluate(self, model: Target, samples: D.Data, gen0: Optional[Target] = None,
                 t: Optional[int] = None) -> dict[str, float]:
        """Generation t's metrics on what its model drew, or on a draw of the target's
        :meth:`~ouroboros.targets.base.Target.min_eval_items` when that drew fewer (stream ``evaluate``)."""
        need = model.min_eval_items()
        if need and t is not None and not isinstance(samples, D.Summary) and int(D.counts(samples).min()) < need:
            samples = model.sample(need, self.lam, self.chain.rng(t, "evaluate"))
        return model.evaluate(D.whole(samples), self.real, self.reference, gen0 if gen0 is not None else self.gen0)

    # -- bookkeeping -------------------------------------------------------------
    def record(self, t: int, model: Target, synthetic: D.Data) -> None:
        """Generation t is done: its synthetic data become S_t."""
        if t == 0:
            self.gen0 = model
        self.model = model
        self.receive(t, synthetic)

    def step(self, t: int, evaluate: bool = True) -> tuple[Target, D.Data, dict[str, float]]:
        """Generation t: build its training set, fit, draw, score (``evaluate``; a block job leaves that to its
        evaluation job, :func:`evaluate_block`) and curate; its metrics: the target's, the engine's and the
        curation step's, in that order."""
        data = self.trainset(t)
        model = self.fit(t, data)
        drawn = self.draw(t, model)
        metrics = self.evaluate(model, drawn, gen0=model if t == 0 else None, t=t) if evaluate else {}
        metrics["train_items"] = train_items(data)
        synthetic, curated = self.synthetic(t, model, drawn)
        metrics.update(curated)
        self.record(t, model, synthetic)
        return model, synthetic, metrics

    # -- resuming a chain mid-way --------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        out = {f"gen0.{k}": v for k, v in self.gen0.get_state().items()}
        out.update({f"last.{k}": v for k, v in self.model.get_state().items()})
        if self.pool is not None and self.pool.as_stats:
            out.update(self.pool.stats().arrays("pool."))
        return out

    def resume(self, last: int, state: dict[str, np.ndarray], models: Optional[Iterable[tuple[int, Target]]] = None) -> None:
        """Continue after generation ``last`` from a saved :meth:`state`.

        The S_j that generation last + 1 reads (:meth:`ChainSpec.redrawn`) are re-drawn from model j with its own
        streams: generation 0's and the last model are in the state, the others come from ``models``
        ((generation, model) pairs, at least those of :meth:`ChainSpec.resume_models`).
        """
        def part(prefix):
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

        self.gen0 = self.template.clone().set_state(part("gen0."))
        self.model = self.template.clone().set_state(part("last."))
        if self.pool is not None and self.pool.as_stats:
            self.pool = Pool(D.summary_from_arrays(state, "pool."), True, self._summarize)
            self.pooled = last + 1
            return
        known = dict(models or ())
        known.update({0: self.gen0, last: self.model})
        missing = [j for j in self.chain.redrawn(last) if j not in known]
        if missing:
            raise ValueError(f"resuming {self.chain.path} after generation {last} needs the models of generations "
                             f"{missing}")
        for j in self.chain.redrawn(last):
            self.receive(j, self.sample(j, known[j]))


@dataclass
class BlockResult:
    first: int
    last: int
    models: list[dict[str, np.ndarray]] = field(default_factory=list)
    metrics: list[tuple[int, str, float]] = field(default_factory=list)
    state: dict[str, np.ndarray] = field(default_factory=dict)

    def stacked_models(self) -> dict[str, np.ndarray]:
        """Every generation's model state, stacked on a leading axis.  An array whose shape changes between
        generations (a KDE's points under accumulate) is padded with zeros to the largest, and its shapes kept
        beside it as ``{key}__shape`` (:func:`unstack_models` cuts each back)."""
        out = {"generation": np.arange(self.first, self.last + 1)}
        for key in self.models[0]:
            arrays = [np.asarray(m[key]) for m in self.models]
            shapes = np.array([a.shape for a in arrays], dtype=np.int64)
            if (shapes == shapes[0]).all():
                out[key] = np.stack(arrays)
                continue
            padded = np.zeros((len(arrays), *shapes.max(axis=0)), dtype=arrays[0].dtype)
            for i, a in enumerate(arrays):
                padded[(i, *(slice(0, s) for s in a.shape))] = a
            out[key], out[f"{key}{RAGGED}"] = padded, shapes
        return out


#: suffix of the shapes kept beside a model array padded when stacked (see :meth:`BlockResult.stacked_models`)
RAGGED = "__shape"


def unstack_models(arrays: dict[str, np.ndarray], template: Target) -> list[tuple[int, Target]]:
    gens = arrays["generation"]
    keys = [k for k in arrays if k != "generation" and not k.endswith(RAGGED)]

    def state(i: int) -> dict[str, np.ndarray]:
        out = {}
        for k in keys:
            a = arrays[k][i]
            if f"{k}{RAGGED}" in arrays:
                a = a[tuple(slice(0, int(s)) for s in arrays[f"{k}{RAGGED}"][i])]
            out[k] = a
        return out

    return [(int(g), template.clone().set_state(state(i))) for i, g in enumerate(gens)]


def split_metrics(values: dict) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """(scalar metrics, per-item distributions) of what ``Target.evaluate`` returned."""
    scalars, arrays = {}, {}
    for k, v in values.items():
        if np.ndim(v) == 0:
            scalars[k] = float(v)
        else:
            arrays[k] = np.asarray(v, dtype=float)
    return scalars, arrays


def run_block(run: ChainRun, first: int, last: int, evaluate: bool = True) -> BlockResult:
    """Generations first..last of a chain already positioned after generation first - 1 (``evaluate``: with the
    target's metrics; a block job leaves them to its evaluation job, which re-draws what each model drew)."""
    result = BlockResult(first, last)
    every = max(1, (last - first + 1) // 10)
    t0 = time.perf_counter()
    for t in range(first, last + 1):
        model, _, values = run.step(t, evaluate=evaluate)
        metrics, _ = split_metrics(values)  # per-item distributions are not kept in block mode
        result.models.append(model.get_state())
        result.metrics.extend((t, k, v) for k, v in metrics.items())
        if (t - first) % every == 0 or t == last:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in list(metrics.items())[:3])
            log.info("%s gen %d/%d: %s (%.1fs)", run.chain.path, t, last, shown, time.perf_counter() - t0)
    result.state = run.state()
    return result


def evaluate_block(run: ChainRun, models: Iterable[tuple[int, Target]], gen0: Target,
                   chain_rows: Iterable[tuple[int, str, float]] = ()) -> list[tuple[int, str, float]]:
    """The metrics of a block's generations, as :meth:`ChainRun.step` scores them in memory: each model re-draws
    what it drew in the block (its own ``sample`` stream, so the same items) and is scored against the real
    held-out data; ``chain_rows``, the block job's own rows of each generation (``train_items``, the curation
    step's), follow each generation's, in the order a block scored in memory writes them."""
    by_gen: dict[int, list[tuple[int, str, float]]] = {}
    for row in chain_rows:
        by_gen.setdefault(int(row[0]), []).append(row)
    rows: list[tuple[int, str, float]] = []
    t0 = time.perf_counter()
    for t, model in models:
        drawn = run.draw(t, model)
        metrics, _ = split_metrics(run.evaluate(model, drawn, gen0=model if t == 0 else gen0, t=t))
        rows.extend((t, k, v) for k, v in metrics.items())
        rows.extend(by_gen.pop(t, []))
        shown = ", ".join(f"{k}={v:.4g}" for k, v in list(metrics.items())[:3])
        log.debug("%s gen %d: %s (%.1fs)", run.chain.path, t, shown, time.perf_counter() - t0)
    if by_gen:
        raise ValueError(f"{run.chain.path}: the block's rows name generations {sorted(by_gen)} it holds no model of")
    return rows
