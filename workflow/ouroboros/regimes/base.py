"""The regime protocol: which data generation t's training set is built from, and how.

Notation: ``real`` is the real training set (n items; generation 0 trains on
it); ``S_j`` are the synthetic items of generation j (the samples of the
generation-j model, after the chain's curation step if it has one).

A regime declares its data flow once, and the chain engine
(:class:`ouroboros.chain.ChainRun`) hands :meth:`Regime.build` exactly that,
whether a chain runs in blocks (in memory) or one generation per job (files):

* :meth:`Regime.sources` -- the generations whose S_j generation t reads;
* :meth:`Regime.uses_real` -- whether it holds items of the real training set
  (fresh real data, :attr:`Regime.fresh_real`, are drawn through
  :attr:`Sources.draw_real` instead);
* :attr:`Regime.pools` -- whether the sources arrive folded into one pool,
  real + S_0 + ... + S_{t-1} in generation order (kept as sufficient
  statistics where the target's fit needs only those and the regime never
  picks items, :attr:`Regime.needs_points`).

A regime kind is one class with its own settings schema (defaults,
descriptions), registered by name in :mod:`ouroboros.regimes`.  Everything
else (rules' params, the metrics table, plots, MLflow params, seeding,
closed forms) sees a regime only through :meth:`Regime.to_spec` /
:func:`ouroboros.regimes.from_spec`, :attr:`Regime.label` and the properties
below: nothing branches on :attr:`Regime.kind`.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Optional

import numpy as np

from ouroboros import data as D
from ouroboros.settings import fill, settings_schema


@dataclass(frozen=True)
class Sources:
    """What :meth:`Regime.build` receives for generation t >= 1: exactly what the regime declared.

    ``real``: the real training set (R, n, ...) where :meth:`Regime.uses_real` says so, else None;
    ``synthetic``: S_j for each j in :meth:`Regime.sources` (t), in generation order (regimes that pool get
    them folded in ``pool`` instead: real + S_0 + ... + S_{t-1}); ``draw_real(rng, m)``: m fresh real items
    per replicate; ``rng``: generation t's ``trainset`` stream; ``summarize``: the target's sufficient statistics
    of points (None where its fit needs the points: a regime that weighs parts needs them).
    """

    t: int
    n: int
    real: Optional[D.Data]
    synthetic: Mapping[int, D.Data]
    pool: Optional[D.Data]
    rng: np.random.Generator
    draw_real: Callable[[np.random.Generator, int], D.Data] = field(repr=False)
    summarize: Optional[Callable[[D.Data], D.Summary]] = field(default=None, repr=False)

    def statistics(self, part: D.Data) -> D.Summary:
        """A part of the training set as the target's sufficient statistics."""
        if isinstance(part, D.Summary):
            return part
        if self.summarize is None:
            raise TypeError("this regime weighs its parts, which needs a target whose fit reads sufficient statistics")
        return self.summarize(part)

    @property
    def previous(self) -> D.Data:
        """S_{t-1}."""
        return self.synthetic[self.t - 1]

    def joined(self) -> D.Data:
        """Every S_j of ``synthetic``, joined in generation order."""
        return D.concat([self.synthetic[j] for j in sorted(self.synthetic)])


class Regime:
    #: registry name
    kind: ClassVar[str] = ""
    #: one line for the README and the report
    description: ClassVar[str] = ""
    #: JSON schema of the settings (each with default and description)
    settings_schema: ClassVar[dict] = settings_schema({})
    #: whether generation t reads real + S_0 + ... + S_{t-1} folded into one pool (:class:`Pool`)
    pools: ClassVar[bool] = False
    #: whether the regime picks individual items (so its data cannot be kept as sufficient statistics)
    needs_points: ClassVar[bool] = False

    def __init__(self, **settings: Any):
        self.settings = fill(self.settings_schema, settings, f"regime {self.kind}")

    # -- identity ----------------------------------------------------------------
    @property
    def label(self) -> str:
        """Folder name of the regime's chains (also a key of their random streams)."""
        return self.kind

    def to_spec(self) -> dict:
        """JSON-able, complete description: ``{"kind": ..., **settings}``."""
        return {"kind": self.kind, **self.settings}

    def columns(self) -> dict:
        """The regime's settings as columns of the metrics table."""
        return {k: v for k, v in self.settings.items() if isinstance(v, (int, float, str, bool))}

    def mlflow_params(self) -> dict[str, str]:
        out = {"regime": self.kind}
        for k, v in self.settings.items():
            out[f"regime.{k}"] = json.dumps(v) if isinstance(v, (dict, list)) else str(v)
        return out

    def __eq__(self, other) -> bool:
        return isinstance(other, Regime) and self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_spec(), sort_keys=True))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"{type(self).__name__}({args})"

    # -- the data flow ---------------------------------------------------------------
    def n_real(self, n: int) -> int:
        """Real items in each training set after generation 0."""
        return 0

    def n_synthetic(self, n: int) -> int:
        """Synthetic items each generation's model must supply (after curation)."""
        return n - self.n_real(n)

    def weights(self, n: int) -> tuple[float, float]:
        """The shares of the refit's weight on the real and on the synthetic items of a training set after
        generation 0 (default: by their counts; a weighted regime sets them)."""
        total = self.n_real(n) + self.n_synthetic(n)
        w = self.n_real(n) / total if total else 0.0
        return w, 1.0 - w

    def train_size(self, n: int, t: int) -> int:
        """Items in generation t's training set (a cost estimate's; curation that keeps fewer is not counted):
        the real items and n_synthetic from each generation it reads (for a pool, every earlier one)."""
        if t == 0:
            return n
        if self.pools:
            return n + t * self.n_synthetic(n)
        return self.n_real(n) + len(self.sources(t)) * self.n_synthetic(n)

    def sources(self, t: int) -> list[int]:
        """Generations whose synthetic data generation t's training set reads (ascending).

        Default: S_{t-1}; every earlier generation for regimes that pool.  A generation once dropped is never
        read again: ``sources(t + 1)`` lies within ``sources(t) + [t]`` (the engine keeps only what a later
        generation still reads; tested for every registered regime).
        """
        if t == 0:
            return []
        return list(range(t)) if self.pools else [t - 1]

    def uses_real(self, t: int) -> bool:
        """Whether generation t's training set holds items of the real training set."""
        return t == 0 or self.pools

    @property
    def fresh_real(self) -> bool:
        """Whether the regime draws fresh real items each generation (:attr:`Sources.draw_real`)."""
        return False

    @functools.cached_property
    def markov(self) -> bool:
        """Whether each generation t >= 1 reads S_{t-1} only (besides real items): what the closed forms of
        one-step recursions need."""
        return not self.pools and all(self.sources(t) == [t - 1] for t in range(1, 65))

    def fully_synthetic(self, n: int) -> bool:
        """Whether generation t >= 1 trains on the n items of S_{t-1} and nothing else (the replace loop)."""
        return self.markov and self.n_real(n) == 0 and self.n_synthetic(n) == n

    #: generations :meth:`most_sources` looks at (and the last): a regime whose number of sources still grows
    #: after these overrides it (the shipped ones reach their most by generation k)
    SOURCES_HORIZON: ClassVar[int] = 4096

    def most_sources(self, generations: int) -> int:
        """The most generations' synthetic data a chain of G generations holds at once (a memory estimate,
        taken from the first :attr:`SOURCES_HORIZON` generations and the last, so a billion generations cost
        no more than a few thousand)."""
        if self.pools:
            return generations
        ts = list(range(1, min(generations, self.SOURCES_HORIZON) + 1)) + ([generations] if generations > 0 else [])
        return max((len(self.sources(t)) for t in ts), default=0)

    def check(self, n: int) -> Optional[str]:
        """A message if the regime cannot run with n items per training set, else None."""
        return None

    def check_target(self, target) -> Optional[str]:
        """A message if the regime cannot run with this target (a weighted fit needs sufficient statistics)."""
        return None

    # -- the training set ---------------------------------------------------------------
    def build(self, src: Sources) -> D.Data:
        """Generation ``src.t``'s training set (t >= 1) from exactly what the regime declared."""
        raise NotImplementedError


class Pool:
    """real + S_0 + S_1 + ...: the growing data of the pooling regimes.

    Kept as a :class:`~ouroboros.data.Summary` (``summarize`` turns points
    into one: the target's sufficient statistics) when the target's fit needs
    only those and the regime never subsamples, otherwise as points.
    """

    def __init__(self, real: D.Data, as_stats: bool, summarize: Callable = D.Stats.from_points):
        self.as_stats = as_stats
        self.summarize = summarize
        self._parts: list = []
        self._stats: Optional[D.Summary] = None
        self._joined = None
        self.add(real)

    def add(self, part: D.Data) -> None:
        if self.as_stats:
            s = part if isinstance(part, D.Summary) else self.summarize(part)
            self._stats = s if self._stats is None else self._stats.merge(s)
        else:
            if isinstance(part, D.Summary):
                raise TypeError("this pool keeps points but was given sufficient statistics")
            self._parts.append(part)
            self._joined = None

    def data(self) -> D.Data:
        if self.as_stats:
            return self._stats
        if self._joined is None:
            self._parts = [D.concat(self._parts)]
            self._joined = self._parts[0]
        return self._joined

    def stats(self) -> D.Summary:
        if not self.as_stats:
            raise TypeError("this pool keeps points")
        return self._stats
