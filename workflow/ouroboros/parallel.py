"""Multithreaded array work cut into a fixed partition: the same numbers whatever the number of threads.

A large draw ``(R, n, d)`` is cut along the replicate axis into chunks whose number depends only on the
shape (about :data:`CHUNK` numbers each), never on the threads a job has; chunk ``i`` draws from child
``i`` of the job's stream (``Generator.spawn``).  The chunks then run on a thread pool of the job's
``threads`` (Snakemake's ``threads:``; numpy's generators and reductions release the GIL), so ``--cores 1``
and ``--cores 16`` give identical results.  A draw that fits one chunk uses the stream itself, unchanged.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

import numpy as np

#: numbers per chunk (2**18 doubles = 2 MiB: large enough that the per-chunk overhead is below 1%)
CHUNK = 1 << 18
#: numbers per block of a reduced draw (:func:`standard_normal_reduce`): 256 KiB, within a core's L2 cache
SUB = 1 << 15
#: the most threads a job asks for (a chunk count above it gains nothing on the machines we run)
MAX_THREADS = 8

_threads = 1
_pool: Optional[ThreadPoolExecutor] = None


def set_threads(n: int) -> None:
    """The threads this process may use (a job's ``threads``)."""
    global _threads, _pool
    n = max(1, int(n or 1))
    if n != _threads and _pool is not None:
        _pool.shutdown()
        _pool = None
    _threads = n


def n_chunks(rows: int, row_items: int) -> int:
    """How many chunks a (rows, ...) array of ``row_items`` numbers per row is cut into (shape only)."""
    return max(1, min(int(rows), math.ceil(int(rows) * int(row_items) / CHUNK)))


def wanted_threads(rows: int, row_items: int) -> int:
    """Threads worth asking for an array this size (1 when it is one chunk)."""
    return min(MAX_THREADS, n_chunks(rows, row_items))


def bounds(rows: int, k: int) -> list[slice]:
    edges = np.linspace(0, rows, k + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def run(func: Callable[[int, slice], None], rows: int, k: int) -> None:
    """``func(i, rows_i)`` for each chunk, on the pool when there are several chunks and threads."""
    parts = bounds(rows, k)
    if k == 1 or _threads == 1:
        for i, s in enumerate(parts):
            func(i, s)
        return
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_threads, thread_name_prefix="ouroboros")
    for f in [_pool.submit(func, i, s) for i, s in enumerate(parts)]:
        f.result()


def standard_normal(rng: np.random.Generator, shape: tuple[int, ...],
                    then: Optional[Callable[[slice, np.ndarray], None]] = None) -> np.ndarray:
    """Standard normals shaped ``shape``, cut along axis 0 into chunks each drawn from a child stream of
    ``rng`` (one chunk: ``rng`` itself).  ``then(rows, block)`` transforms each chunk in place in its thread
    (e.g. scale and shift), while the chunk is still in cache."""
    rows = int(shape[0])
    row_items = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    k = n_chunks(rows, row_items)
    if k == 1:
        out = rng.standard_normal(shape)
        if then is not None:
            then(slice(0, rows), out)
        return out
    out = np.empty(shape)
    children = rng.spawn(k)

    def fill(i: int, s: slice) -> None:
        block = out[s]
        children[i].standard_normal(out=block)
        if then is not None:
            then(s, block)

    run(fill, rows, k)
    return out


def standard_normal_reduce(rng: np.random.Generator, shape: tuple[int, ...],
                           reduce: Callable[[slice, np.ndarray], None]) -> None:
    """The numbers of :func:`standard_normal` (the same chunks and streams), handed to ``reduce(rows, block)``
    in consecutive row blocks of about :data:`SUB` numbers, each drawn into one small buffer and reduced while
    it is in cache: what needs only a reduction of a large draw never holds the whole of it.  A generator
    fills consecutive draws with the consecutive numbers of its stream, so the blocks are the chunk's rows."""
    rows = int(shape[0])
    row_items = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    k = n_chunks(rows, row_items)
    step = max(1, SUB // max(row_items, 1))

    def one(gen: np.random.Generator, s: slice) -> None:
        buf = np.empty((min(step, s.stop - s.start), *shape[1:]))
        for a in range(s.start, s.stop, step):
            b = min(a + step, s.stop)
            block = buf[: b - a]
            gen.standard_normal(out=block)
            reduce(slice(a, b), block)

    if k == 1:
        one(rng, slice(0, rows))
        return
    children = rng.spawn(k)
    run(lambda i, s: one(children[i], s), rows, k)


def row_reduce(func: Callable[[np.ndarray], tuple], x: np.ndarray) -> tuple:
    """``func`` applied to fixed row chunks of ``x`` (a per-row reduction), the results concatenated along
    axis 0 in order: the same numbers as ``func(x)`` whatever the threads."""
    rows = x.shape[0]
    k = n_chunks(rows, int(np.prod(x.shape[1:], dtype=np.int64)) if x.ndim > 1 else 1)
    if k == 1:
        return func(x)
    results: list = [None] * k

    def one(i: int, s: slice) -> None:
        results[i] = func(x[s])

    run(one, rows, k)
    return tuple(np.concatenate([r[j] for r in results], axis=0) for j in range(len(results[0])))
