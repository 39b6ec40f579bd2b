"""The forms a training set takes.

* **points**: a numpy array shaped ``(R, n, ...)``: R replicate chains of n
  items each (vectors, images, token rows, strings).
* :class:`Masked`: points with a validity mask ``(R, n)``, for training sets
  whose size differs between replicates (after deduplication or threshold
  curation).  Nothing is padded silently: masked-out items are never fitted.
  A single replicate never needs a mask (its invalid items are dropped).
* a :class:`Summary`: sufficient statistics of such a set, per replicate.
  Targets whose fit depends on the data only through them can pool training
  sets without keeping the points.  :class:`Stats` are the Gaussian's (count,
  mean, centred scatter matrix; pooled with Chan et al.'s pairwise update, so
  they stay accurate when the spread is many orders of magnitude below the
  mean); :class:`Counts` are the categorical target's (counts per category).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from ouroboros import parallel


class Summary:
    """Sufficient statistics of R replicate training sets: they merge, and summarise points of their family."""

    #: prefix of the arrays in a saved file (``stats_count``, ``counts_c``); subclasses also have ``count``,
    #: items per replicate (R,)
    prefix = ""

    @property
    def replicates(self) -> int:
        raise NotImplementedError

    def merge(self, other: "Summary") -> "Summary":
        raise NotImplementedError

    def summarize(self, points) -> "Summary":
        """Points (or Masked points) as a summary of this family."""
        raise NotImplementedError

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        raise NotImplementedError

    def scaled(self, factor: float) -> "Summary":
        """The statistics of the same items, each weighing ``factor`` items (a number, or one per replicate, (R,)):
        merged with other parts, the fit is the weighted maximum likelihood."""
        raise NotImplementedError


def summary_from_arrays(arrays: dict[str, np.ndarray], prefix: str = "") -> "Summary":
    """The summary saved by ``Summary.arrays(prefix)`` (its family recognised by its keys)."""
    if f"{prefix}c" in arrays:
        return Counts.from_arrays(arrays, prefix)
    if f"{prefix}xx" in arrays:
        return Gram.from_arrays(arrays, prefix)
    return Stats.from_arrays(arrays, prefix)


def _mean_m2(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-replicate mean and centred sum of squares of points shaped (R, n, d)."""
    mean = x.mean(axis=1)
    c = x - mean[:, None, :]
    if x.shape[2] == 1:
        return mean, np.einsum("rn,rn->r", c[..., 0], c[..., 0])[:, None, None]
    return mean, np.einsum("rni,rnj->rij", c, c)


@dataclass(frozen=True)
class Stats(Summary):
    count: np.ndarray  # (R,)
    mean: np.ndarray  # (R, d)
    m2: np.ndarray  # (R, d, d): sum of (x - mean)(x - mean)^T

    prefix = "stats_"

    @property
    def replicates(self) -> int:
        return self.mean.shape[0]

    def summarize(self, points) -> "Stats":
        return Stats.from_points(points)

    @classmethod
    def from_points(cls, x) -> "Stats":
        if isinstance(x, Masked):
            return cls.from_masked(x)
        x = np.asarray(x, dtype=float)
        if x.ndim != 3:
            raise ValueError(f"points must be shaped (R, n, d), got {x.shape}")
        r, n, d = x.shape
        if n == 0:
            return cls.empty(r, d)
        mean, m2 = parallel.row_reduce(_mean_m2, x)  # row chunks on the job's threads (a large draw)
        return cls(np.full(r, float(n)), mean, m2)

    @classmethod
    def from_masked(cls, x: "Masked") -> "Stats":
        pts = np.asarray(x.points, dtype=float)
        if pts.ndim != 3:
            raise ValueError(f"points must be shaped (R, n, d), got {pts.shape}")
        w = x.mask.astype(float)
        count = w.sum(axis=1)
        safe = np.where(count > 0, count, 1.0)
        mean = np.einsum("rn,rnd->rd", w, pts) / safe[:, None]
        c = (pts - mean[:, None, :]) * w[..., None]
        m2 = np.einsum("rni,rnj->rij", c, c)
        return cls(count, mean, m2)

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

    def scaled(self, factor: float) -> "Stats":
        f = np.asarray(factor, float)
        return Stats(self.count * f, self.mean, self.m2 * (f[..., None, None] if f.ndim else f))

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {f"{prefix}count": self.count, f"{prefix}mean": self.mean, f"{prefix}m2": self.m2}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "") -> "Stats":
        return cls(arrays[f"{prefix}count"], arrays[f"{prefix}mean"], arrays[f"{prefix}m2"])


@dataclass(frozen=True)
class Counts(Summary):
    """Category counts ``c`` (R, K) of training sets of category indices (items shaped (R, n, 1))."""

    c: np.ndarray

    prefix = "counts_"

    @property
    def count(self) -> np.ndarray:
        return self.c.sum(axis=1)

    @property
    def replicates(self) -> int:
        return self.c.shape[0]

    @classmethod
    def from_items(cls, x, K: int) -> "Counts":
        """Counts of items (R, n, 1) (or Masked items) over K categories."""
        idx = (x.points if isinstance(x, Masked) else np.asarray(x)).astype(np.int64)[..., 0]
        r = idx.shape[0]
        w = x.mask.astype(float).ravel() if isinstance(x, Masked) else None
        flat = (idx + K * np.arange(r)[:, None]).ravel()
        return cls(np.bincount(flat, weights=w, minlength=r * K).reshape(r, K).astype(float))

    def summarize(self, points) -> "Counts":
        return Counts.from_items(points, self.c.shape[1])

    def merge(self, other: "Counts") -> "Counts":
        return Counts(self.c + other.c)

    def scaled(self, factor: float) -> "Counts":
        f = np.asarray(factor, float)
        return Counts(self.c * (f[:, None] if f.ndim else f))

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {f"{prefix}c": self.c}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "") -> "Counts":
        return cls(np.asarray(arrays[f"{prefix}c"], float))


@dataclass(frozen=True)
class Gram(Summary):
    """Least-squares sufficient statistics of rows (x, y) (items shaped (R, n, d + 1), y last): count, X^T X
    (R, d, d), X^T y (R, d) and y^T y (R,)."""

    count: np.ndarray
    xx: np.ndarray
    xy: np.ndarray
    yy: np.ndarray

    prefix = "gram_"

    @property
    def replicates(self) -> int:
        return self.xy.shape[0]

    @classmethod
    def from_points(cls, rows) -> "Gram":
        if isinstance(rows, Masked):
            pts = np.asarray(rows.points, float) * rows.mask[..., None]
            count = rows.mask.sum(axis=1).astype(float)
        else:
            pts = np.asarray(rows, float)
            count = np.full(pts.shape[0], float(pts.shape[1]))
        x, y = pts[..., :-1], pts[..., -1]
        return cls(count, np.einsum("rni,rnj->rij", x, x), np.einsum("rni,rn->ri", x, y), np.einsum("rn,rn->r", y, y))

    def summarize(self, points) -> "Gram":
        return Gram.from_points(points)

    def merge(self, other: "Gram") -> "Gram":
        return Gram(self.count + other.count, self.xx + other.xx, self.xy + other.xy, self.yy + other.yy)

    def scaled(self, factor: float) -> "Gram":
        f = np.asarray(factor, float)
        col = f[:, None] if f.ndim else f
        return Gram(self.count * f, self.xx * (f[:, None, None] if f.ndim else f), self.xy * col, self.yy * f)

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {f"{prefix}count": self.count, f"{prefix}xx": self.xx, f"{prefix}xy": self.xy, f"{prefix}yy": self.yy}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "") -> "Gram":
        return cls(*(np.asarray(arrays[f"{prefix}{k}"], float) for k in ("count", "xx", "xy", "yy")))


@dataclass(frozen=True)
class Masked:
    """Points ``(R, n, ...)`` of which only ``mask`` ``(R, n)`` are real items of each replicate."""

    points: np.ndarray
    mask: np.ndarray

    def __post_init__(self):
        if self.mask.shape != self.points.shape[:2]:
            raise ValueError(f"mask {self.mask.shape} does not fit points {self.points.shape}")

    @property
    def replicates(self) -> int:
        return self.points.shape[0]


Data = Union[np.ndarray, Summary, Masked]


def compact(points: np.ndarray, valid: np.ndarray) -> Data:
    """``points`` (R, n, ...) keeping only ``valid`` (R, n): the points themselves when all are valid, the
    valid items when there is one replicate, else :class:`Masked`."""
    valid = np.asarray(valid, dtype=bool)
    if valid.all():
        return points
    if points.shape[0] == 1:
        return points[:, valid[0]]
    return Masked(points, valid)


def counts(data: Data) -> np.ndarray:
    """Items per replicate, shaped (R,)."""
    if isinstance(data, Summary):
        return np.rint(data.count).astype(int)  # weighted parts (Summary.scaled) sum to a float
    if isinstance(data, Masked):
        return data.mask.sum(axis=1)
    return np.full(np.shape(data)[0], np.shape(data)[1])


def size(data: Data) -> int:
    """Number of items per replicate (the largest where replicates differ)."""
    c = counts(data)
    return int(c.max()) if c.size else 0


def whole(data: Data) -> Data:
    """Everything drawn: :class:`Parts` joined, anything else as it is."""
    return data.joined() if isinstance(data, Parts) else data


def items_array(data: Data) -> np.ndarray:
    """The (R, n, ...) array of item slots (for :class:`Masked`, valid or not: use its mask)."""
    if isinstance(data, Summary):
        raise TypeError("sufficient statistics have no items")
    return data.points if isinstance(data, Masked) else np.asarray(data)


def items(data: Data, replicate: int) -> np.ndarray:
    """The items of one replicate, masked-out ones dropped."""
    if isinstance(data, Summary):
        raise TypeError("sufficient statistics have no items")
    if isinstance(data, Masked):
        return data.points[replicate][data.mask[replicate]]
    return np.asarray(data)[replicate]


def take_first(data: Data, m: int) -> Data:
    """The first m items of every replicate (what a regime that needs fewer items takes of shared samples).

    Sufficient statistics cannot be cut: they must hold exactly m items (see :class:`Parts`).
    """
    if isinstance(data, Parts):
        return data.first(m)
    if isinstance(data, Summary):
        if np.any(data.count != m):
            raise ValueError(f"cannot take {m} items of sufficient statistics of {data.count.max():.0f} items")
        return data
    if isinstance(data, Masked):
        return data if data.points.shape[1] == m else compact(data.points[:, :m], data.mask[:, :m])
    if np.shape(data)[1] < m:
        raise ValueError(f"need {m} items, the samples hold {np.shape(data)[1]}")
    return data if np.shape(data)[1] == m else data[:, :m]


@dataclass(frozen=True)
class Parts:
    """Synthetic data drawn in consecutive parts from one stream (sizes s_1, s_2, ...), so that regimes
    needing s_1, s_1 + s_2, ... items take the first ones.  Points are joined; sufficient statistics are
    kept per part and merged on demand (they cannot be cut)."""

    parts: tuple

    def first(self, m: int) -> Data:
        total, out = 0, []
        for p in self.parts:
            if total == m:
                break
            out.append(p)
            total += size(p)
        if total != m:
            raise ValueError(f"no leading parts hold exactly {m} items (part sizes {[size(p) for p in self.parts]})")
        return concat(out)

    def joined(self) -> Data:
        return concat(list(self.parts))


def concat(parts: Sequence[Data]) -> Data:
    """Join training sets item-wise; any :class:`Summary` part makes the result a summary of its family, any
    :class:`Masked` part (and no summary) makes it Masked."""
    parts = [p for p in parts if p is not None]
    if not parts:
        raise ValueError("nothing to concatenate")
    if any(isinstance(p, Masked) for p in parts) and not any(isinstance(p, Summary) for p in parts):
        pts = [p.points if isinstance(p, Masked) else np.asarray(p) for p in parts]
        masks = [p.mask if isinstance(p, Masked) else np.ones(np.shape(p)[:2], bool) for p in parts]
        return Masked(np.concatenate(pts, axis=1), np.concatenate(masks, axis=1))
    if any(isinstance(p, Summary) for p in parts):
        family = next(p for p in parts if isinstance(p, Summary))
        out = None
        for p in parts:
            s = p if isinstance(p, Summary) else family.summarize(p)
            out = s if out is None else out.merge(s)
        return out
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def draw_indices(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """n indices per row of ``weights`` (R, K), each drawn with probability proportional to its weight, shaped
    (R, n): the inverse CDF of every row searched on one sorted axis."""
    r, k = weights.shape
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random((r, n))
    offset = np.arange(r)[:, None]
    idx = np.searchsorted((cdf + offset).ravel(), (u + offset).ravel(), side="right").reshape(r, n)
    return np.minimum(idx - k * offset, k - 1)


def subsample(points: Data, m: int, rng: np.random.Generator) -> Data:
    """m items drawn without replacement, independently for every replicate.

    From :class:`Masked` points, only valid items are drawn; a replicate with
    fewer than m valid items keeps all of them (the result is then Masked).
    """
    if isinstance(points, Summary):
        raise TypeError("cannot subsample sufficient statistics: this regime needs the points")
    if isinstance(points, Masked):
        r, n = points.mask.shape
        keys = np.where(points.mask, rng.random((r, n)), 2.0)  # valid items first, in random order
        idx = np.sort(np.argsort(keys, axis=1)[:, :m], axis=1)
        rows = np.arange(r)[:, None]
        return compact(points.points[rows, idx], points.mask[rows, idx])
    r, n = points.shape[:2]
    if m > n:
        raise ValueError(f"cannot draw {m} items without replacement from {n}")
    if m == n:
        idx = np.argsort(rng.random((r, n)), axis=1)
    else:
        idx = np.sort(np.argpartition(rng.random((r, n)), m - 1, axis=1)[:, :m], axis=1) if m else np.zeros((r, 0), int)
    return points[np.arange(r)[:, None], idx]


def to_arrays(data: Data) -> dict[str, np.ndarray]:
    if isinstance(data, Parts):
        if not any(isinstance(p, Summary) for p in data.parts):
            return to_arrays(data.joined())
        out = {"parts": np.asarray(len(data.parts))}
        for i, p in enumerate(data.parts):
            out.update({f"part{i}.{k}": v for k, v in to_arrays(p).items()})
        return out
    if isinstance(data, Summary):
        return data.arrays(data.prefix)
    if isinstance(data, Masked):
        return {"points": data.points, "mask": data.mask}
    return {"points": data}


def from_arrays(arrays: dict[str, np.ndarray]) -> Data:
    if "parts" in arrays:
        return Parts(tuple(from_arrays({k[len(f"part{i}."):]: v for k, v in arrays.items() if k.startswith(f"part{i}.")})
                           for i in range(int(arrays["parts"]))))
    if "mask" in arrays:
        return Masked(arrays["points"], arrays["mask"].astype(bool))
    if "points" in arrays:
        return arrays["points"]
    for family in (Counts, Gram, Stats):
        if any(k.startswith(family.prefix) for k in arrays):
            return family.from_arrays(arrays, family.prefix)
    raise ValueError(f"no data in arrays {sorted(arrays)}")


def near_duplicates(x: np.ndarray, tolerance: float) -> np.ndarray:
    """(R, N) True where item j of a replicate lies within ``tolerance`` (Euclidean; 0: exactly equal) of an
    earlier item that is itself kept, visiting items in order (greedy: the first of each group is kept).

    x: (R, N, f) numeric features.  Exact duplicates use ``np.unique``; near duplicates a k-d tree, one
    ball query per kept item (so a collapsed sample with few distinct groups costs few queries).
    """
    x = np.asarray(x, dtype=float)
    r, n = x.shape[:2]
    dup = np.zeros((r, n), dtype=bool)
    for i in range(r):
        xi = x[i].reshape(n, -1)
        if tolerance == 0:
            _, first = np.unique(xi, axis=0, return_index=True)
            dup[i] = True
            dup[i, first] = False
            continue
        from scipy.spatial import cKDTree

        tree = cKDTree(xi)
        marked = np.zeros(n, dtype=bool)
        for j in range(n):
            if marked[j]:
                continue
            near = np.asarray(tree.query_ball_point(xi[j], tolerance), dtype=int)
            marked[near[near > j]] = True
        dup[i] = marked
    return dup
