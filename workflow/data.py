"""The two forms a training set takes.

* **points**: a numpy array shaped ``(R, n, ...)``: R replicate chains of n
  items each (vectors, images, token rows, strings).
* :class:`Stats`: the Gaussian sufficient statistics of such a set, per
  replicate (count, mean, centred scatter matrix).  Targets whose fit depends
  on the data only through these (the Gaussian) can pool training sets without
  keeping the points.  Pooling uses Chan et al.'s pairwise update, so it stays
  accurate when the spread is many orders of magnitude below the mean.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np


@dataclass(frozen=True)
class Stats:
    count: np.ndarray  # (R,)
    mean: np.ndarray  # (R, d)
    m2: np.ndarray  # (R, d, d): sum of (x - mean)(x - mean)^T

    @property
    def replicates(self) -> int:
        return self.mean.shape[0]

    @classmethod
    def from_points(cls, x: np.ndarray) -> "Stats":
        x = np.asarray(x, dtype=float)
        if x.ndim != 3:
            raise ValueError(f"points must be shaped (R, n, d), got {x.shape}")
        r, n, d = x.shape
        if n == 0:
            return cls.empty(r, d)
        mean = x.mean(axis=1)
        c = x - mean[:, None, :]
        if d == 1:
            m2 = np.einsum("rn,rn->r", c[..., 0], c[..., 0])[:, None, None]
        else:
            m2 = np.einsum("rni,rnj->rij", c, c)
        return cls(np.full(r, float(n)), mean, m2)

    @classmethod
    def empty(cls, r: int, d: int) -> "Stats":
        return cls(np.zeros(r), np.zeros((r, d)), np.zeros((r, d, d)))

    def merge(self, other: "Stats") -> "Stats":
        na, nb = self.count, other.count
        n = na + nb
        safe = np.where(n > 0, n, 1.0)
        delta = other.mean - self.mean
        mean = self.mean + delta * (nb / safe)[:, None]
        m2 = self.m2 + other.m2 + np.einsum("ri,rj->rij", delta, delta) * (na * nb / safe)[:, None, None]
        return Stats(n, mean, m2)

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {f"{prefix}count": self.count, f"{prefix}mean": self.mean, f"{prefix}m2": self.m2}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "") -> "Stats":
        return cls(arrays[f"{prefix}count"], arrays[f"{prefix}mean"], arrays[f"{prefix}m2"])


Data = Union[np.ndarray, Stats]


def size(data: Data) -> int:
    """Number of items per replicate."""
    if isinstance(data, Stats):
        counts = np.unique(data.count)
        return int(counts[0]) if counts.size == 1 else int(counts.max())
    return int(np.shape(data)[1])


def concat(parts: Sequence[Data]) -> Data:
    """Join training sets item-wise; any :class:`Stats` part makes the result Stats."""
    parts = [p for p in parts if p is not None]
    if not parts:
        raise ValueError("nothing to concatenate")
    if any(isinstance(p, Stats) for p in parts):
        out = None
        for p in parts:
            s = p if isinstance(p, Stats) else Stats.from_points(p)
            out = s if out is None else out.merge(s)
        return out
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def subsample(points: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """m items drawn without replacement, independently for every replicate."""
    if isinstance(points, Stats):
        raise TypeError("cannot subsample sufficient statistics: this regime needs the points")
    r, n = points.shape[:2]
    if m > n:
        raise ValueError(f"cannot draw {m} items without replacement from {n}")
    if m == n:
        idx = np.argsort(rng.random((r, n)), axis=1)
    else:
        idx = np.sort(np.argpartition(rng.random((r, n)), m - 1, axis=1)[:, :m], axis=1) if m else np.zeros((r, 0), int)
    return points[np.arange(r)[:, None], idx]


def to_arrays(data: Data) -> dict[str, np.ndarray]:
    return data.arrays("stats_") if isinstance(data, Stats) else {"points": data}


def from_arrays(arrays: dict[str, np.ndarray]) -> Data:
    if "points" in arrays:
        return arrays["points"]
    return Stats.from_arrays(arrays, "stats_")
