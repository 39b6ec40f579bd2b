"""The regime protocol: how generation t's training set is built from real and synthetic data.

Notation: ``real`` is the real training set (n items; generation 0 trains on
it); ``S_j`` are the synthetic items of generation j (the samples of the
generation-j model, after the chain's curation step if it has one).

A regime kind is one class with its own settings schema (defaults,
descriptions), registered by name in :mod:`ouroboros.regimes`.  Everything
else (rules' params, the metrics table, plots, MLflow params, seeding) sees a
regime only through :meth:`Regime.to_spec` / :func:`ouroboros.regimes.from_spec`,
:attr:`Regime.label` and the methods below.
"""
from __future__ import annotations

import json
from typing import Any, Callable, ClassVar, Optional

import numpy as np

from ouroboros import data as D
from ouroboros.settings import fill, settings_schema


class Regime:
    #: registry name
    kind: ClassVar[str] = ""
    #: one line for the README and the report
    description: ClassVar[str] = ""
    #: JSON schema of the settings (each with default and description)
    settings_schema: ClassVar[dict] = settings_schema({})
    #: whether training sets draw on every earlier generation's samples (a growing pool)
    pools: ClassVar[bool] = False
    #: whether the regime needs actual items (not just sufficient statistics)
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

    # -- sizes and sources ---------------------------------------------------------
    def n_real(self, n: int) -> int:
        """Real items in each training set after generation 0."""
        return 0

    def n_synthetic(self, n: int) -> int:
        """Synthetic items each generation's model must supply (after curation)."""
        return n - self.n_real(n)

    def sources(self, t: int) -> list[int]:
        """Generations whose synthetic data generation t's training set reads."""
        if t == 0:
            return []
        return list(range(t)) if self.pools else [t - 1]

    def uses_real(self, t: int) -> bool:
        """Whether generation t's training set holds items of the real training set."""
        return t == 0 or self.pools

    def check(self, n: int) -> Optional[str]:
        """A message if the regime cannot run with n items per training set, else None."""
        return None

    # -- the training set ---------------------------------------------------------------
    def build(self, t: int, n: int, real: D.Data, previous: Optional[D.Data], pool: Optional["Pool"],
              rng: np.random.Generator, draw_real: Callable[[np.random.Generator, int], D.Data]) -> D.Data:
        """Generation t's training set (t >= 1).

        ``previous`` is S_{t-1}; ``pool`` holds real + S_0..S_{t-1} for pooling
        regimes; ``draw_real(rng, m)`` draws m fresh real items.
        """
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


def build_trainset(regime: Regime, t: int, n: int, real: D.Data, previous: Optional[D.Data], pool: Optional[Pool],
                   rng: np.random.Generator, draw_real: Callable[[np.random.Generator, int], D.Data]) -> D.Data:
    """Generation t's training set: the real data at t = 0, else what the regime builds."""
    if t == 0:
        return real
    return regime.build(t, n, real, previous, pool, rng, draw_real)
