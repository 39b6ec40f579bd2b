"""How generation t's training set is built from real and synthetic data.

Notation: ``real`` is the real training set (n items, generation 0 trains on
it); ``S_j`` are the synthetic items sampled from the generation-j model.

* ``replace`` (fully synthetic loop): D_t = S_{t-1}.
* ``accumulate`` (Gerstgrasser et al. 2024): D_t = real + S_0 + ... + S_{t-1}.
* ``accumulate-subsample`` (Kazdan et al. 2024): n items drawn without
  replacement from that growing pool.
* ``mix`` with real fraction rho (Shumailov et al. 2024): round(rho n) real items
  plus n - round(rho n) items of S_{t-1}.  The real items are a fresh random
  subset of the real training set each generation, or, with ``fresh``, newly
  drawn real data each generation (the fresh-data loop of Alemohammad et al.).

Each generation's model emits exactly the number of synthetic items the regime
consumes per generation (:meth:`Regime.n_synthetic`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from workflow import data as D

KINDS = ("replace", "accumulate", "accumulate-subsample", "mix")


@dataclass(frozen=True)
class Regime:
    kind: str
    rho: float = 0.0
    fresh: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown regime {self.kind!r}; allowed: {', '.join(KINDS)}")
        if not 0.0 <= self.rho <= 1.0:
            raise ValueError(f"rho must lie in [0, 1], got {self.rho}")

    @property
    def label(self) -> str:
        """Folder name: ``replace``, ``accumulate``, ``mix-rho0.1``, ``mix-rho0.1-fresh``."""
        if self.kind != "mix":
            return self.kind
        return f"mix-rho{self.rho:g}" + ("-fresh" if self.fresh else "")

    @property
    def pools(self) -> bool:
        """Whether training sets draw on every earlier generation's samples."""
        return self.kind in ("accumulate", "accumulate-subsample")

    @property
    def needs_points(self) -> bool:
        """Whether the regime needs actual items (not just sufficient statistics)."""
        return self.kind == "accumulate-subsample"

    def n_real(self, n: int) -> int:
        return int(round(self.rho * n)) if self.kind == "mix" else 0

    def n_synthetic(self, n: int) -> int:
        return n - self.n_real(n)

    def sources(self, t: int) -> list[int]:
        """Generations whose samples generation t's training set reads."""
        if t == 0:
            return []
        return list(range(t)) if self.pools else [t - 1]

    def uses_real(self, t: int) -> bool:
        return t == 0 or self.pools or (self.kind == "mix" and not self.fresh and self.rho > 0)


class Pool:
    """real + S_0 + S_1 + ...: the growing data of the accumulate regimes.

    Kept as :class:`~workflow.data.Stats` when the target's fit needs only
    those and the regime never subsamples, otherwise as points.
    """

    def __init__(self, real: D.Data, as_stats: bool):
        self.as_stats = as_stats
        self._parts: list = []
        self._stats: Optional[D.Stats] = None
        self.add(real)

    def add(self, part: D.Data) -> None:
        if self.as_stats:
            s = part if isinstance(part, D.Stats) else D.Stats.from_points(part)
            self._stats = s if self._stats is None else self._stats.merge(s)
        else:
            if isinstance(part, D.Stats):
                raise TypeError("this pool keeps points but was given sufficient statistics")
            self._parts.append(part)
            self._joined = None

    def data(self) -> D.Data:
        if self.as_stats:
            return self._stats
        if getattr(self, "_joined", None) is None:
            self._parts = [D.concat(self._parts)]
            self._joined = self._parts[0]
        return self._joined

    def stats(self) -> D.Stats:
        if not self.as_stats:
            raise TypeError("this pool keeps points")
        return self._stats


def build_trainset(
    regime: Regime,
    t: int,
    n: int,
    real: D.Data,
    previous: Optional[D.Data],
    pool: Optional[Pool],
    rng: np.random.Generator,
    draw_real: Callable[[np.random.Generator, int], D.Data],
) -> D.Data:
    """Generation t's training set.

    ``previous`` is S_{t-1}; ``pool`` holds real + S_0..S_{t-1} for the pooling
    regimes; ``draw_real(rng, m)`` draws m fresh real items (mix, fresh).
    """
    if t == 0:
        return real
    if regime.kind == "replace":
        return previous
    if regime.kind == "accumulate":
        return pool.data()
    if regime.kind == "accumulate-subsample":
        return D.subsample(pool.data(), n, rng)
    # mix
    m = regime.n_real(n)
    parts = []
    if m:
        if regime.fresh:
            parts.append(draw_real(rng, m))
        else:
            parts.append(D.subsample(real, m, rng))
    if regime.n_synthetic(n):
        parts.append(previous)
    return D.concat(parts)
