"""The recursive loop: train on data, sample, curate, build the next training set, repeat.

:class:`ChainRun` holds what a chain needs between generations (the real data,
the generation-0 and latest models, the latest synthetic data, the pool of the
accumulate regimes).  The same :meth:`ChainRun.trainset`, fit, draw, curate
and evaluate calls serve both ways the workflow runs a chain:

* one generation per job (train, generate and evaluate rules; models and
  samples are files), and
* a block of k generations per job (:func:`run_block`), keeping everything in
  memory and writing every generation's model stacked in ``models.npz``.

Every random draw comes from ``chain.rng(generation, purpose)``, so both give
the same numbers for the same config, whatever the block size or ``--cores``.
Samples are never needed from disk in block mode: S_j is re-drawn from model j
with its own stream when a later block needs it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional

import numpy as np

from ouroboros import data as D
from ouroboros.config import Chain
from ouroboros.curation import Context
from ouroboros.regimes import Pool, build_trainset
from ouroboros.targets.base import Target

log = logging.getLogger("ouroboros")


class ChainRun:
    def __init__(self, chain: Chain, real: Optional[dict[str, np.ndarray]] = None,
                 reference: Optional[dict[str, np.ndarray]] = None):
        self.chain = chain
        self.template = chain.target()
        self.regime = chain.regime
        self.n = chain.experiment.n
        self.lam = chain.experiment.lam
        self.replicates = chain.experiment.replicates
        self.real = real
        self.reference = reference
        self.gen0: Optional[Target] = None
        self.model: Optional[Target] = None
        self.previous: Optional[D.Data] = None
        self.pool: Optional[Pool] = (Pool(real["train"], self.pool_as_stats, self.template.summarize)
                                     if self.regime.pools and real else None)
        self.curation = chain.curation()

    @property
    def pool_as_stats(self) -> bool:
        return self.chain.pool_as_stats

    @property
    def n_synthetic(self) -> int:
        return self.chain.n_synthetic

    # -- the steps of a generation ---------------------------------------------------
    def trainset(self, t: int) -> D.Data:
        return build_trainset(self.regime, t, self.n, self.real["train"], self.previous, self.pool,
                              self.chain.rng(t, "trainset"),
                              lambda rng, m: self.template.draw_real(rng, m, self.replicates))

    def fit(self, t: int, data: D.Data) -> Target:
        return self.template.clone().fit(data, self.chain.rng(t, "fit"))

    def draw(self, t: int, model: Target) -> D.Data:
        """What generation t's model draws: the chain's candidates; at t = 0 every regime's, in parts."""
        return model.sample_parts(self.chain.emit_parts(t), self.lam, self.chain.rng(t, "sample"))

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

    def evaluate(self, model: Target, samples: D.Data, gen0: Optional[Target] = None) -> dict[str, float]:
        return model.evaluate(D.whole(samples), self.real, self.reference, gen0 if gen0 is not None else self.gen0)

    # -- bookkeeping -------------------------------------------------------------
    def record(self, t: int, model: Target, synthetic: D.Data) -> None:
        """Generation t is done: its synthetic data become S_t."""
        if t == 0:
            self.gen0 = model
        self.model = model
        self.previous = synthetic
        if self.pool is not None:
            self.pool.add(synthetic)

    def step(self, t: int) -> tuple[Target, D.Data, dict[str, float]]:
        model = self.fit(t, self.trainset(t))
        drawn = self.draw(t, model)
        metrics = self.evaluate(model, drawn, gen0=model if t == 0 else None)
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

        Pools of points are rebuilt from ``models`` (every generation 0..last, in
        order) by re-drawing each generation's samples from its own stream.
        """
        def part(prefix):
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

        self.gen0 = self.template.clone().set_state(part("gen0."))
        self.model = self.template.clone().set_state(part("last."))
        self.previous = self.sample(last, self.model)
        if self.pool is None:
            return
        if self.pool.as_stats:
            self.pool = Pool(D.summary_from_arrays(state, "pool."), True, self.template.summarize)
            return
        if models is None:
            raise ValueError("resuming a pool of points needs every earlier generation's model")
        seen = 0
        for j, model in models:
            if j != seen:
                raise ValueError(f"models must run 0..{last} in order, got generation {j} where {seen} was expected")
            self.pool.add(self.previous if j == last else self.sample(j, model))
            seen += 1
        if seen != last + 1:
            raise ValueError(f"got models for generations 0..{seen - 1}, need 0..{last}")


@dataclass
class BlockResult:
    first: int
    last: int
    models: list[dict[str, np.ndarray]] = field(default_factory=list)
    metrics: list[tuple[int, str, float]] = field(default_factory=list)
    state: dict[str, np.ndarray] = field(default_factory=dict)

    def stacked_models(self) -> dict[str, np.ndarray]:
        out = {"generation": np.arange(self.first, self.last + 1)}
        for key in self.models[0]:
            out[key] = np.stack([m[key] for m in self.models])
        return out


def unstack_models(arrays: dict[str, np.ndarray], template: Target) -> list[tuple[int, Target]]:
    gens = arrays["generation"]
    keys = [k for k in arrays if k != "generation"]
    return [(int(g), template.clone().set_state({k: arrays[k][i] for k in keys})) for i, g in enumerate(gens)]


def split_metrics(values: dict) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """(scalar metrics, per-item distributions) of what ``Target.evaluate`` returned."""
    scalars, arrays = {}, {}
    for k, v in values.items():
        if np.ndim(v) == 0:
            scalars[k] = float(v)
        else:
            arrays[k] = np.asarray(v, dtype=float)
    return scalars, arrays


def run_block(run: ChainRun, first: int, last: int) -> BlockResult:
    """Generations first..last of a chain already positioned after generation first - 1."""
    result = BlockResult(first, last)
    every = max(1, (last - first + 1) // 10)
    t0 = time.perf_counter()
    for t in range(first, last + 1):
        model, _, values = run.step(t)
        metrics, _ = split_metrics(values)  # per-item distributions are not kept in block mode
        result.models.append(model.get_state())
        result.metrics.extend((t, k, v) for k, v in metrics.items())
        if (t - first) % every == 0 or t == last:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in list(metrics.items())[:3])
            log.info("%s gen %d/%d: %s (%.1fs)", run.chain.path, t, last, shown, time.perf_counter() - t0)
    result.state = run.state()
    return result
