"""Random streams derived from names, never from execution order.

Every stream is ``numpy.random.SeedSequence`` seeded with hashes of a key such
as ``(study, experiment, regime, seed, generation, purpose)``.  The same key
gives the same numbers in any process, on any machine, whatever ``--cores``.
"""
from __future__ import annotations

import hashlib

import numpy as np


def _word(key: object) -> int:
    """A 128-bit integer for one key element, stable across processes."""
    if isinstance(key, bool) or not isinstance(key, (int, str, float)):
        raise TypeError(f"seed keys must be int, float or str, got {key!r}")
    tagged = f"{type(key).__name__}:{key!r}".encode()
    return int.from_bytes(hashlib.sha256(tagged).digest()[:16], "little")


def seed_sequence(*keys: object) -> np.random.SeedSequence:
    if not keys:
        raise ValueError("at least one key is needed")
    return np.random.SeedSequence([_word(k) for k in keys])


def generator(*keys: object) -> np.random.Generator:
    """A fresh PCG64 generator for the stream named by ``keys``."""
    return np.random.Generator(np.random.PCG64(seed_sequence(*keys)))
